// Observability: schedule health, Prometheus metrics and webhook alerts, started with the app and
// stopped when it closes. GET /events streams the engine's run change feed (event-streams.ts).
import fp from 'fastify-plugin'
import { createScheduleHealth, type ScheduleHealth } from '../engine/schedule-health.js'
import { type Alerts, createAlerts } from './alerts.js'
import { createEventStreams, type EventStreams } from './event-streams.js'
import { createMetrics, type Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    scheduleHealth: ScheduleHealth
    metrics: Metrics
    alerts: Alerts
    eventStreams: EventStreams
  }
}

export interface MonitoringOptions {
  /** What time it is for schedule health; tests pass a controllable clock. */
  clock?: () => Date
}

export default fp<MonitoringOptions>(
  async (app, { clock = () => new Date() }) => {
    const { sql, config, jobs, scheduleStore: schedules, runner, runEvents, tokens, log } = app
    const scheduleHealth = createScheduleHealth(sql, jobs, clock)
    const metrics = createMetrics({
      sql,
      health: scheduleHealth,
      runner,
      jobs,
      instanceId: config.instanceId,
      log,
    })
    const alerts = createAlerts({ sql, schedules, health: scheduleHealth, config, log })
    const eventStreams = createEventStreams({
      runEvents,
      tokens,
      perToken: config.eventsStreamsPerToken,
      pingMs: config.eventsPingMs,
      log,
    })

    app.decorate('scheduleHealth', scheduleHealth)
    app.decorate('metrics', metrics)
    app.decorate('alerts', alerts)
    app.decorate('eventStreams', eventStreams)

    app.addHook('onReady', async () => {
      alerts.start()
    })
    app.addHook('preClose', async () => {
      // Open streams would keep the server from closing.
      eventStreams.close()
      await alerts.stop()
    })
    app.addHook('onClose', async () => {
      metrics.close()
    })
  },
  { name: 'monitoring', dependencies: ['db', 'auth', 'engine'] },
)
