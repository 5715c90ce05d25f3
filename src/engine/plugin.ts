// Wires the domain services together and runs the scheduler for the life of the app: started when
// the app is ready, stopped (letting running jobs finish for SHUTDOWN_GRACE_MS) when it closes.
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import type { AnyJob } from './job.js'
import { createRunner, type Runner } from './runner.js'
import { createRunsService, type RunsService } from './run-store.js'
import { createScheduler, type Scheduler } from './scheduler.js'
import { createSchedulesService, type SchedulesService } from './schedule-store.js'
import { createSupervisor, type Supervisor } from './supervisor.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    jobs: Map<string, AnyJob>
    runs: RunsService
    schedules: SchedulesService
    runner: Runner
    scheduler: Scheduler
    supervisor: Supervisor
  }
}

export interface SchedulerOptions {
  config: Config
  jobs: AnyJob[]
  clock?: () => Date
}

export default fp<SchedulerOptions>(
  async (app, { config, jobs: jobList, clock }) => {
    const jobs = new Map(jobList.map((job) => [job.name, job]))
    if (jobs.size !== jobList.length) throw new Error('two jobs share a name')
    const { sql } = app
    const log = app.log
    const runs = createRunsService(sql)
    const schedules = createSchedulesService(sql, jobs, config.schedulerTimezone)
    const runner = createRunner({ sql, runs, jobs, config, log })
    const scheduler = createScheduler({ sql, runs, schedules, runner, jobs, log, clock })
    const supervisor = createSupervisor({ sql, runs, runner, config, log })

    app.decorate('config', config)
    app.decorate('jobs', jobs)
    app.decorate('runs', runs)
    app.decorate('schedules', schedules)
    app.decorate('runner', runner)
    app.decorate('scheduler', scheduler)
    app.decorate('supervisor', supervisor)

    const seeded = await schedules.seedDefaults()
    if (seeded.length > 0) log.info({ seeded }, 'default schedules created')

    app.addHook('onReady', async () => {
      // Every instance executes queued work and watches for abandoned runs; firing schedules can
      // be turned off per instance.
      await supervisor.start()
      if (!config.schedulerEnabled) return
      await scheduler.start()
      log.info({ schedules: scheduler.armed(), instance: config.instanceId }, 'scheduler started')
    })
    // Stop firing first, then let running jobs finish (still heartbeating), then stop supervising.
    app.addHook('preClose', async () => {
      await scheduler.stop()
      await runner.stop(config.shutdownGraceMs)
      await supervisor.stop()
    })
  },
  { name: 'scheduler', dependencies: ['db'] },
)
