// Main: load config, start the embedded database when no DATABASE_URL is given, build the app,
// listen, and shut everything down cleanly on SIGINT/SIGTERM.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { type EmbeddedDatabase, startEmbeddedPostgres } from './db/embedded.js'
import { DataDirInUse } from './db/owner-lock.js'
import { isDatabaseDown } from './lib/errors.js'

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`steward: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }

  let embedded: EmbeddedDatabase | undefined
  if (!config.databaseUrl) {
    try {
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir })
    } catch (err) {
      if (!(err instanceof DataDirInUse)) throw err
      process.stderr.write(`steward: ${err.message}\n`)
      process.exit(1)
    }
    config = { ...config, databaseUrl: embedded.url }
  }

  const app = await buildApp(config, {
    logger: { level: config.logLevel },
  }).catch(async (err) => {
    await embedded?.stop()
    throw err
  })
  if (embedded) app.log.info({ port: embedded.port, dataDir: config.dataDir }, 'embedded PostgreSQL started')

  // First signal: graceful (running jobs get SHUTDOWN_GRACE_MS, then aborted jobs up to 12 s to
  // stop their child processes, then the pool up to 5 s); a second signal forces exit.
  const stop = async () => {
    await app.close()
    await embedded?.stop()
    app.log.info('stopped')
  }
  const closer = closeWithGrace(
    { delay: config.shutdownGraceMs + 30_000, skip: ['unhandledRejection'] },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'shutting down after an error')
      else app.log.info({ signal }, 'shutting down')
      await stop()
    },
  )
  // postgres.js can reject a promise nobody awaits when the database drops a new connection (its
  // type lookup on connect). That is an outage the loops already ride out, not a reason to stop.
  // Any other unhandled rejection is a bug: shut down gracefully, as close-with-grace would.
  let failing = false
  process.on('unhandledRejection', (err) => {
    if (isDatabaseDown(err)) {
      app.log.warn({ err }, 'database connection lost outside any request; carrying on')
      return
    }
    app.log.error({ err }, 'unhandled rejection: shutting down')
    if (failing) return
    failing = true
    closer.uninstall()
    const deadline = setTimeout(() => process.exit(1), config.shutdownGraceMs + 30_000)
    void stop().finally(() => {
      clearTimeout(deadline)
      process.exit(1)
    })
  })

  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    app.log.error({ err }, 'could not listen')
    await app.close()
    await embedded?.stop()
    process.exit(1)
  }
}

main().catch((err) => {
  process.stderr.write(`steward: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
