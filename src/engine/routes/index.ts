// The engine's routes: jobs (list, trigger), runs (history, cancel) and schedules (edit, preview).
import type { FastifyPluginAsync } from 'fastify'
import jobs from './jobs.js'
import runs from './runs.js'
import schedules from './schedules.js'

export const ENGINE_TAGS = [
  { name: 'jobs', description: 'What can run; trigger by hand' },
  { name: 'runs', description: 'Every execution, newest first' },
  { name: 'schedules', description: 'When jobs run' },
]

const engineRoutes: FastifyPluginAsync = async (app) => {
  await app.register(jobs)
  await app.register(runs)
  await app.register(schedules)
}

export default engineRoutes
