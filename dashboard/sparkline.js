// A schedule's recent runs as a sparkline, drawn as plain SVG: a bar per finished run, its height
// the run's duration, its colour the outcome; then the success rate. The chart has a text
// alternative (role img with a label), and every bar a tooltip.
import { h, svg } from './dom.js'
import { duration, relative } from './format.js'

const SPARK_RUNS = 30
const BAR = 3
const GAP = 1
const SPARK_HEIGHT = 22

function outcomeCounts(runs) {
  const counts = {}
  for (const run of runs) counts[run.state] = (counts[run.state] ?? 0) + 1
  return Object.entries(counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ')
}

/**
 * A bar per finished run, oldest on the left, its height the run's duration against the longest
 * shown, its colour the outcome; then the success rate. `onPick(id)` opens a run's details.
 */
export function sparkline(schedule, onPick) {
  const runs = schedule.recent ?? []
  if (runs.length === 0) return h('span', { class: 'sub' }, 'no finished runs')
  const longest = Math.max(1, ...runs.map((run) => run.durationMs ?? 0))
  const width = SPARK_RUNS * (BAR + GAP) - GAP
  const start = (SPARK_RUNS - Math.min(SPARK_RUNS, runs.length)) * (BAR + GAP)
  const bars = runs.slice(-SPARK_RUNS).map((run, i) => {
    const height = Math.max(2, Math.round(((run.durationMs ?? 0) / longest) * SPARK_HEIGHT))
    return svg(
      'rect',
      {
        class: `bar outcome-${run.state}`,
        x: start + i * (BAR + GAP),
        y: SPARK_HEIGHT - height,
        width: BAR,
        height,
        'data-run': run.id,
        onclick: () => onPick(run.id),
      },
      svg(
        'title',
        {},
        `#${run.id} ${run.state} in ${duration(run.durationMs)}, ${relative(Date.parse(run.finishedAt) - Date.now())}`,
      ),
    )
  })
  const rate = schedule.successRate
  const rateText = rate === null || rate === undefined ? '—' : `${Math.round(rate * 100)}%`
  const rateClass =
    rate === null || rate === undefined ? '' : rate >= 0.95 ? 'good' : rate >= 0.8 ? 'fair' : 'poor'
  const label =
    `Last ${runs.length} finished run${runs.length === 1 ? '' : 's'} of ${schedule.name}: ` +
    `${outcomeCounts(runs)}; longest ${duration(longest)}` +
    (rateText === '—' ? '' : `; ${rateText} succeeded of those that succeeded or failed`)
  return h(
    'div',
    { class: 'spark-cell' },
    svg(
      'svg',
      {
        class: 'spark',
        width,
        height: SPARK_HEIGHT,
        viewBox: `0 0 ${width} ${SPARK_HEIGHT}`,
        role: 'img',
        'aria-label': label,
      },
      svg('title', {}, label),
      svg('line', { class: 'baseline', x1: 0, x2: width, y1: SPARK_HEIGHT - 0.5, y2: SPARK_HEIGHT - 0.5 }),
      bars,
    ),
    h(
      'span',
      {
        class: 'sub',
        title:
          rateText === '—'
            ? 'No run succeeded or failed'
            : 'Of the runs shown that succeeded or failed (cancelled ones do not count)',
      },
      h('span', { class: `rate ${rateClass}` }, rateText),
      rateText === '—' ? ' no successes or failures' : ' succeeded',
    ),
  )
}
