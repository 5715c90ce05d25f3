// Performance trends for the registry: per job, run-duration percentiles and failure rate over
// the last 7 and 30 days, straight from job_runs.
import type { Sql } from 'postgres'

export interface Window {
  /** Finished runs that started (skipped fires never did). */
  runs: number
  succeeded: number
  failed: number
  p50Ms: number | null
  p95Ms: number | null
  /** failed / (succeeded + failed); null when neither happened. */
  failureRate: number | null
}

export interface JobTrend {
  job: string
  last7d: Window
  last30d: Window
}

interface Row {
  job: string
  days: number
  runs: number
  succeeded: number
  failed: number
  p50Ms: number | null
  p95Ms: number | null
}

function toWindow(row: Row | undefined): Window {
  if (!row) return { runs: 0, succeeded: 0, failed: 0, p50Ms: null, p95Ms: null, failureRate: null }
  const decided = row.succeeded + row.failed
  return {
    runs: row.runs,
    succeeded: row.succeeded,
    failed: row.failed,
    p50Ms: row.p50Ms === null ? null : Math.round(row.p50Ms),
    p95Ms: row.p95Ms === null ? null : Math.round(row.p95Ms),
    failureRate: decided === 0 ? null : Math.round((row.failed / decided) * 10_000) / 10_000,
  }
}

export async function jobTrends(sql: Sql): Promise<JobTrend[]> {
  const rows = await sql<Row[]>`
    select r.job, w.days,
           count(*)::int as runs,
           count(*) filter (where r.state = 'succeeded')::int as succeeded,
           count(*) filter (where r.state = 'failed')::int as failed,
           percentile_cont(0.5) within group (order by extract(epoch from r.finished_at - r.started_at) * 1000)
             ::float8 as p50_ms,
           percentile_cont(0.95) within group (order by extract(epoch from r.finished_at - r.started_at) * 1000)
             ::float8 as p95_ms
    from job_runs r
    join (values (7), (30)) as w(days) on r.finished_at >= now() - w.days * interval '1 day'
    where r.finished_at is not null and r.started_at is not null
    group by r.job, w.days
    order by r.job`
  const jobs = [...new Set(rows.map((r) => r.job))]
  return jobs.map((job) => ({
    job,
    last7d: toWindow(rows.find((r) => r.job === job && r.days === 7)),
    last30d: toWindow(rows.find((r) => r.job === job && r.days === 30)),
  }))
}
