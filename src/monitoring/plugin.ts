// Observability: run changes of the whole cluster (for GET /events and alerts), schedule health,
// Prometheus metrics and webhook alerts, started with the app and stopped when it closes.
import fp from 'fastify-plugin'
import { type Alerts, createAlerts } from './alerts.js'
import { createMetrics, type Metrics } from './metrics.js'
import { createRunEvents, type RunEvents } from './run-events.js'
import { createScheduleHealth, type ScheduleHealth } from './schedule-health.js'

declare module 'fastify' {
  interface FastifyInstance {
    runEvents: RunEvents
    scheduleHealth: ScheduleHealth
    metrics: Metrics
    alerts: Alerts
  }
}

export interface MonitoringOptions {
  /** What time it is for schedule health; tests pass a controllable clock. */
  clock?: () => Date
}

export default fp<MonitoringOptions>(
  async (app, { clock = () => new Date() }) => {
    const { sql, config, jobs, schedules, runner, log } = app
    const runEvents = createRunEvents({ sql, log })
    const scheduleHealth = createScheduleHealth(sql, jobs, clock)
    const metrics = createMetrics({
      sql,
      schedules,
      health: scheduleHealth,
      runner,
      jobs,
      instanceId: config.instanceId,
      log,
    })
    const alerts = createAlerts({ sql, schedules, health: scheduleHealth, config, log })

    app.decorate('runEvents', runEvents)
    app.decorate('scheduleHealth', scheduleHealth)
    app.decorate('metrics', metrics)
    app.decorate('alerts', alerts)

    app.addHook('onReady', async () => {
      await runEvents.start()
      alerts.start()
    })
    // Ends open event streams, so closing does not wait for their clients to hang up.
    app.addHook('preClose', async () => {
      await alerts.stop()
      await runEvents.stop()
    })
    app.addHook('onClose', async () => {
      metrics.close()
    })
  },
  { name: 'monitoring', dependencies: ['db', 'scheduler'] },
)
