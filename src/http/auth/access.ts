// Who may do what, in one place, so it can be read (and reviewed) at a glance:
// - ACCESS: the role each route needs. A route without a rule refuses to start (see describeAccess
//   in plugin.ts), so nothing is ever exposed by omission;
// - TRIGGER_ACCESS: what a manual run may do beyond its route's role. Some runs of a job are an
//   admin's call although triggering the job is an operator's (a daily backup set rotates the oldest
//   daily set out through retention, which is deleting a backup). A job names the action its args
//   amount to (JobDefinition.triggerAction); this table says which role takes it. Scheduled runs
//   and retries are the system's own and are not checked.
import type { Role } from './tokens.js'

export type Access = 'public' | Role

/** Who may call which route. HEAD follows GET. */
export const ACCESS: Record<string, Access> = {
  'GET /health': 'public',
  'GET /ready': 'public',
  'GET /metrics': 'public', // closed by METRICS_TOKEN when set (src/monitoring/routes/metrics.ts)
  'GET /openapi.json': 'public',
  'GET /': 'public', // the dashboard page: it asks for a token and calls the API with it

  'GET /me': 'viewer',
  'GET /events': 'viewer',
  'GET /jobs': 'viewer',
  'GET /jobs/:name': 'viewer',
  'GET /runs': 'viewer',
  'GET /runs/:id': 'viewer',
  'GET /runs/:id/logs': 'viewer', // what the job logged: its messages and fields
  'GET /schedules': 'viewer',
  'GET /schedules/:name': 'viewer',
  'POST /schedules/preview': 'viewer', // computes fire times, saves nothing
  'GET /backups': 'viewer',
  'GET /backups/:id': 'viewer',
  'GET /registry/snapshots': 'viewer',
  'GET /registry/snapshots/latest': 'viewer',
  'GET /registry/snapshots/:id': 'viewer',
  'GET /templates': 'viewer',
  'GET /templates/search': 'viewer',
  'GET /templates/:id': 'viewer',

  'POST /jobs/:name/runs': 'operator',
  'POST /runs/:id/cancel': 'operator',
  'GET /backups/:id/download': 'operator', // a full copy of the database
  'POST /backups/:id/verify': 'operator',

  'PATCH /jobs/:name': 'admin', // limits apply to every run of the job, scheduled ones included
  'POST /schedules': 'admin',
  'PATCH /schedules/:name': 'admin',
  'DELETE /schedules/:name': 'admin',
  'DELETE /backups/:id': 'admin',
  'POST /tokens': 'admin',
  'GET /tokens': 'admin',
  'DELETE /tokens/:name': 'admin',
  'GET /audit': 'admin',
}

/** Swagger UI and the dashboard's static files: public, like the page that loads them. */
const PUBLIC_TREES = ['/docs', '/ui']

export function accessOf(method: string, url: string): Access | undefined {
  // Exactly the tree or a path inside it: "/docs" and "/docs/json", never "/docsecret".
  if (PUBLIC_TREES.some((tree) => url === tree || url.startsWith(`${tree}/`))) return 'public'
  return ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`]
}

/** Manual runs by what they do: who may trigger them, and why it is that role. */
export const TRIGGER_ACCESS = {
  /** A manual backup set: kept until an admin deletes it. */
  'backup.manual': { role: 'operator', why: 'a manual set is kept until deleted' },
  /** An hourly or daily set: makes retention delete the oldest set of its kind, as DELETE /backups/{id} does. */
  'backup.rotating': {
    role: 'admin',
    why: 'an hourly or daily set rotates the oldest set of its kind out through retention; an operator may run {"type": "manual"}',
  },
  /** prune-runs keeping at least RUNS_RETENTION_DAYS of history. */
  'runs.prune': { role: 'operator', why: 'runs newer than RUNS_RETENTION_DAYS are kept' },
  /** prune-runs deleting history younger than RUNS_RETENTION_DAYS. */
  'runs.prune-below-retention': {
    role: 'admin',
    why: 'it deletes runs newer than RUNS_RETENTION_DAYS; an operator may prune down to RUNS_RETENTION_DAYS',
  },
  /** template-sync within its guard. */
  'templates.sync': { role: 'operator', why: 'a sync never deletes more than half of the templates' },
  /** template-sync with allowMassDelete: may delete every template and its embeddings. */
  'templates.mass-delete': {
    role: 'admin',
    why: 'allowMassDelete lets a sync delete every template and its embeddings',
  },
} as const satisfies Record<string, { role: Role; why: string }>

export type TriggerAction = keyof typeof TRIGGER_ACCESS
