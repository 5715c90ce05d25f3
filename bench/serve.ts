// A Steward server process for the benchmarks: src/server.ts's main with the benchmark's no-op job
// registered too, against DATABASE_URL (required; the benchmark created the database).
import closeWithGrace from 'close-with-grace'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { benchJobs } from './noop-job.js'

const config = loadConfig()
const app = await buildApp(config, { jobs: benchJobs, logger: { level: config.logLevel } })
closeWithGrace({ delay: config.shutdownGraceMs + 30_000 }, async () => {
  await app.close()
})
await app.listen({ port: config.port, host: config.host })
