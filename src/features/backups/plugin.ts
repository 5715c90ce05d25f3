// Backups: the service the /backups routes use; at start-up, the age keys are checked (a bad one
// stops the server, naming its variable), what an interrupted backup or restore check left behind
// is removed (temporary files, scratch databases) before any job runs, and files still waiting for
// their off-site upload are uploaded in the background.
import type { FastifyPluginAsync } from 'fastify'
import type { FeatureOptions } from '../../engine/feature.js'
import { pinoRunLogger } from '../../engine/run-log.js'
import { dropStaleScratchDatabases, sweepBackupDir, sweepRestoreTemp } from './housekeeping.js'
import { loadIdentities, loadRecipients } from './keys.js'
import routes from './routes.js'
import { type BackupsService, createBackupsService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance {
    backups: BackupsService
  }
}

const backups: FastifyPluginAsync<FeatureOptions> = async (app, { documentationOnly }) => {
  if (!documentationOnly) {
    await loadRecipients(app.config)
    await loadIdentities(app.config)
    const log = pinoRunLogger(app.log)
    const service = createBackupsService(app.sql, app.config, log)
    app.decorate('backups', service)
    // Registered before the engine's onReady hook starts any run. A sweep that fails (BACKUP_DIR
    // unreadable) must not keep the API from starting: the next backup reports it.
    await sweepBackupDir(app.sql, app.config, log).catch((err) =>
      app.log.error({ err }, 'could not sweep BACKUP_DIR'),
    )
    await sweepRestoreTemp(app.config.backupDir, log).catch((err) =>
      app.log.warn({ err }, 'could not sweep the temporary copies of restores'),
    )
    await dropStaleScratchDatabases(app.sql, log).catch((err) =>
      app.log.warn({ err }, 'could not drop scratch databases of interrupted restore checks'),
    )
    const offsite = service.offsite
    if (offsite?.remote) {
      let uploading: Promise<unknown> = Promise.resolve()
      const stop = new AbortController()
      app.addHook('onReady', async () => {
        uploading = offsite
          .uploadPending({ wait: false, signal: stop.signal })
          .then((report) => {
            if (report.uploaded.length > 0)
              app.log.info({ uploaded: report.uploaded }, 'pending backups uploaded')
          })
          .catch((err) => {
            if (!stop.signal.aborted) app.log.warn({ err }, 'could not upload pending backups at start-up')
          })
      })
      app.addHook('onClose', async () => {
        stop.abort(new Error('shutting down'))
        await uploading
        offsite.remote?.close()
      })
    }
  }
  await app.register(routes)
}

export default backups
