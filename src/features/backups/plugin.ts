// Backups: the service the /backups routes use, and at start-up, before any job runs, the removal
// of what an interrupted backup or restore check left behind (temporary files, scratch databases).
import type { FastifyPluginAsync } from 'fastify'
import type { FeatureOptions } from '../../engine/feature.js'
import { dropStaleScratchDatabases, sweepBackupDir } from './housekeeping.js'
import routes from './routes.js'
import { type BackupsService, createBackupsService } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    backups: BackupsService
  }
}

const backups: FastifyPluginAsync<FeatureOptions> = async (app, { documentationOnly }) => {
  if (!documentationOnly) {
    app.decorate('backups', createBackupsService(app.sql, app.config, app.log))
    // Registered before the engine's onReady hook starts any run. A sweep that fails (BACKUP_DIR
    // unreadable) must not keep the API from starting: the next backup reports it.
    await sweepBackupDir(app.sql, app.config, app.log).catch((err) =>
      app.log.error({ err }, 'could not sweep BACKUP_DIR'),
    )
    await dropStaleScratchDatabases(app.sql, app.log).catch((err) =>
      app.log.warn({ err }, 'could not drop scratch databases of interrupted restore checks'),
    )
  }
  await app.register(routes)
}

export default backups
