// The engine's services, created once and decorated on the app: the job list, the run and schedule
// stores, the runner, the scheduler, the supervisor, the cluster's run change feed and the run
// history's page cache. The scheduler runs for the life of the app: started when the app is ready,
// stopped (letting running jobs finish for SHUTDOWN_GRACE_MS) when it closes.
import fp from 'fastify-plugin'
import { createPageCache, type PageCache } from '../lib/page-cache.js'
import type { AnyJob } from './job.js'
import { createJobSettings, type JobSettings } from './job-settings.js'
import { createRunEvents, type RunEvents } from './run-events.js'
import { createRunLogs, type RunLogs } from './run-log.js'
import { createRunStore, type RunStore } from './run-store.js'
import { createRunner, type Runner } from './runner.js'
import { createScheduleStore, type ScheduleStore } from './schedule-store.js'
import { createScheduler, type Scheduler } from './scheduler.js'
import { createSupervisor, type Supervisor } from './supervisor.js'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: Map<string, AnyJob>
    jobSettings: JobSettings
    runStore: RunStore
    scheduleStore: ScheduleStore
    runner: Runner
    scheduler: Scheduler
    supervisor: Supervisor
    runEvents: RunEvents
    /** Runs' own logs: read, and followed live. */
    runLogs: RunLogs
    /** Pages of GET /runs, kept until any run changes (here or on another instance). */
    runPages: PageCache
  }
}

export interface EngineOptions {
  jobs: AnyJob[]
  clock?: () => Date
}

export default fp<EngineOptions>(
  async (app, { jobs: jobList, clock }) => {
    const jobs = new Map(jobList.map((job) => [job.name, job]))
    if (jobs.size !== jobList.length) throw new Error('two jobs share a name')
    const { sql, config, log } = app
    const runStore = createRunStore(sql)
    const scheduleStore = createScheduleStore(sql, jobs, config.schedulerTimezone)
    const jobSettings = createJobSettings(sql, jobs, log)
    const runner = createRunner({ sql, runs: runStore, jobs, settings: jobSettings, config, log })
    const scheduler = createScheduler({
      sql,
      runs: runStore,
      schedules: scheduleStore,
      runner,
      jobs,
      settings: jobSettings,
      log,
      instanceId: config.instanceId,
      clock,
    })
    const supervisor = createSupervisor({ sql, runs: runStore, runner, config, log })
    const runEvents = createRunEvents({ sql, log })
    const runLogs = createRunLogs({ sql, runs: runStore, runEvents, log })
    // Run history is read far more often than it changes (dashboards poll it): pages are dropped
    // when any run changes, on this instance (the runner's events, synchronous, so a client reads
    // its own writes) or any other (the change feed), and after RUNS_CACHE_MS whatever happens.
    const runPages = createPageCache({
      maxAgeMs: config.runsCacheMs,
      maxEntries: 500,
      maxChars: 16 * 2 ** 20,
    })
    runner.events.on('run', runPages.invalidate)
    const unwatch = runEvents.watch(runPages.invalidate)

    app.decorate('jobs', jobs)
    app.decorate('jobSettings', jobSettings)
    app.decorate('runStore', runStore)
    app.decorate('scheduleStore', scheduleStore)
    app.decorate('runner', runner)
    app.decorate('scheduler', scheduler)
    app.decorate('supervisor', supervisor)
    app.decorate('runEvents', runEvents)
    app.decorate('runLogs', runLogs)
    app.decorate('runPages', runPages)

    const seeded = await scheduleStore.seedDefaults()
    if (seeded.length > 0) log.info({ seeded }, 'default schedules created')

    app.addHook('onReady', async () => {
      await runEvents.start()
      await jobSettings.start()
      // Every instance executes queued work and watches for abandoned runs; firing schedules can
      // be turned off per instance.
      await supervisor.start()
      if (!config.schedulerEnabled) return
      const started = performance.now()
      await scheduler.start()
      log.info(
        {
          upcoming: scheduler.upcoming().length,
          instances: scheduler.instances(),
          instance: config.instanceId,
          ms: Math.round(performance.now() - started),
        },
        'scheduler started',
      )
    })
    // Stop firing first, then let running jobs finish (still heartbeating), then stop supervising.
    app.addHook('preClose', async () => {
      await scheduler.stop()
      await runner.stop(config.shutdownGraceMs)
      await supervisor.stop()
      await jobSettings.stop()
      runner.events.off('run', runPages.invalidate)
      unwatch()
      await runLogs.stop()
      await runEvents.stop()
    })
  },
  { name: 'engine', dependencies: ['db'] },
)
