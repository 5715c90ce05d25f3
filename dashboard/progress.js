// How far a running run has got: a bar with its percentage and an estimate of the time left when
// the job knows its total; what it has done so far when it does not.
import { h } from './dom.js'
import { percent, quantity, span } from './format.js'

/** The first reading this page saw of each run, for the rate (a job may spend a while setting up). */
const firstReadings = new Map()

/** Notes a run's reading; forgets runs that have ended. */
export function noteProgress(run) {
  if (run.state !== 'running' && run.state !== 'queued') firstReadings.delete(run.id)
  else if (run.progress && !firstReadings.has(run.id))
    firstReadings.set(run.id, { done: run.progress.done, at: Date.parse(run.progress.updatedAt) })
}

/**
 * When the run should be done, by the rate since the first reading seen (once it has moved on by a
 * second), else since the run started: a time in ms, or null when it cannot be told.
 */
export function finishAt(run) {
  const p = run.progress
  if (run.state !== 'running' || !p || p.total === null || p.done <= 0 || p.done >= p.total) return null
  const at = Date.parse(p.updatedAt)
  const first = firstReadings.get(run.id)
  const [from, since] =
    first && p.done > first.done && at - first.at >= 1000
      ? [first.done, first.at]
      : [0, Date.parse(run.startedAt ?? p.updatedAt)]
  const rate = (p.done - from) / (at - since)
  if (!(rate > 0) || !Number.isFinite(rate)) return null
  return at + (p.total - p.done) / rate
}

/** What is left, said from now: "about 2 min 10 s left". */
export const timeLeft = (at) => {
  const ms = at - Date.now()
  return ms > 1000 ? `about ${span(ms)} left` : 'finishing'
}

/** The run's progress in words: "420 of 1,000 files", or "1.2 MiB so far" without a total. */
export function progressText(p) {
  if (p.total === null) return `${quantity(p.done, p.unit)} so far`
  if (p.unit === 'bytes') return `${quantity(p.done, p.unit)} of ${quantity(p.total, p.unit)}`
  return `${p.done.toLocaleString('en')} of ${quantity(p.total, p.unit)}`
}

/**
 * A progress bar (role progressbar) for a run with a known total; the amount done otherwise.
 * `compact`: the small one of the runs table, with the percentage alone.
 */
export function progressView(run, { compact = false } = {}) {
  const p = run.progress
  if (!p) return null
  if (p.total === null || !(p.total > 0)) {
    return h('span', { class: compact ? 'progress-count sub' : 'progress-count' }, progressText(p))
  }
  const share = p.done / p.total
  const shown = percent(share)
  const eta = compact ? null : finishAt(run)
  const words = `${shown}, ${progressText(p)}${eta === null ? '' : `, ${timeLeft(eta)}`}`
  const bar = h(
    'div',
    {
      class: 'progress-track',
      role: 'progressbar',
      'aria-label': `Progress of run ${run.id}`,
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': Number.parseInt(shown, 10),
      'aria-valuetext': words,
      title: words,
    },
    h('div', { class: 'progress-fill', style: `width: ${shown}` }),
  )
  return h(
    'div',
    { class: compact ? 'progress compact' : 'progress' },
    bar,
    h('span', { class: 'progress-percent' }, shown),
    compact ? null : h('span', { class: 'progress-detail' }, progressText(p)),
    eta === null ? null : h('span', { class: 'progress-eta', 'data-finish': Math.round(eta) }, timeLeft(eta)),
  )
}

/** Says the time left again (called every second): the estimate stays, the clock moves on. */
export function tickProgress() {
  for (const el of document.querySelectorAll('.progress-eta'))
    el.textContent = timeLeft(Number(el.dataset.finish))
}
