// Backups: the service the /backups routes use, and at start-up, before any job runs, the removal
// of what an interrupted backup or restore check left behind (temporary files, scratch databases).
import fp from 'fastify-plugin'
import { dropStaleScratchDatabases, sweepBackupDir } from './housekeeping.js'
import { type BackupsService, createBackupsService } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    backups: BackupsService
  }
}

export default fp(
  async (app) => {
    const backups = createBackupsService(app.sql, app.config, app.log)
    app.decorate('backups', backups)
    // Registered after the scheduler plugin, before its onReady hook starts any run. A sweep that
    // fails (BACKUP_DIR unreadable) must not keep the API from starting: the next backup reports it.
    await sweepBackupDir(app.sql, app.config, app.log).catch((err) =>
      app.log.error({ err }, 'could not sweep BACKUP_DIR'),
    )
    await dropStaleScratchDatabases(app.sql, app.log).catch((err) =>
      app.log.warn({ err }, 'could not drop scratch databases of interrupted restore checks'),
    )
  },
  { name: 'backups', dependencies: ['db', 'scheduler'] },
)
