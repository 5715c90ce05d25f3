// The size of backups over time, drawn as plain SVG (nothing fetched, no library): one line per
// database, size from 0 on the y axis, time on the x axis, and the files GET /backups flags with a
// size `anomaly` ringed. The chart has a text alternative (title and desc), every point a tooltip.
import { h, svg } from './dom.js'
import { bytes, time } from './format.js'

const HEIGHT = 240
const MARGIN = { left: 72, right: 16, top: 14, bottom: 44 }
/** Series colours (app.css .series-N); more series than this reuse them. */
const COLOURS = 8
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const TIME_STEPS = [
  MINUTE,
  5 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
  30 * DAY,
  90 * DAY,
]

/** The series of a backup: its database, or the server's roles (a set's globals file). */
const seriesOf = (b) =>
  b.scope === 'globals'
    ? { key: 'globals', name: 'roles (globals)' }
    : { key: `db:${b.database}`, name: b.database }

/** Size ticks from 0, in one unit: [0, 0.5, 1, 1.5] MiB, and the top of the axis. */
function sizeTicks(max) {
  const power = max < 1024 ? 0 : Math.min(UNITS.length - 1, Math.floor(Math.log(max) / Math.log(1024)))
  const unit = 1024 ** power
  // Whole bytes at least: a chart of tiny files does not tick at 0.25 B.
  const raw = Math.max(max / unit, power === 0 ? 4 : 1) / 4
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude
  const top = Math.max(step, Math.ceil(max / unit / step) * step)
  const ticks = []
  for (let v = 0; v <= top + step / 1000; v += step) ticks.push(v)
  return {
    top: top * unit,
    ticks: ticks.map((v) => ({ value: v * unit, label: `${Number(v.toFixed(2))} ${UNITS[power]}` })),
  }
}

/** Time ticks on round local times, about one per 110 px. */
function timeTicks(from, to, width) {
  const wanted = Math.max(2, Math.floor(width / 110))
  const step = TIME_STEPS.find((s) => (to - from) / s <= wanted) ?? TIME_STEPS[TIME_STEPS.length - 1]
  const local = -new Date(from).getTimezoneOffset() * MINUTE
  const ticks = []
  for (let t = Math.ceil((from + local) / step) * step - local; t <= to; t += step) ticks.push(t)
  const day = (t) => new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
  const hour = (t) =>
    new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
  return ticks.map((t, i) => ({
    value: t,
    label: step >= DAY ? day(t) : i === 0 || day(t) !== day(ticks[i - 1]) ? `${day(t)} ${hour(t)}` : hour(t),
  }))
}

function anomalyText(b) {
  const { reason, medianBytes } = b.anomaly
  return `${reason === 'smaller' ? 'far smaller' : 'far larger'} than usual: ${bytes(b.bytes)} against a median of ${bytes(medianBytes)}`
}

/**
 * The chart of `backups` (any order), `width` px wide: a line and dots per series, size on the
 * y axis from 0, time on the x axis; anomalies (GET /backups: `anomaly`) ringed. Returns the SVG
 * and an HTML legend.
 */
export function backupChart(backups, width) {
  const series = new Map()
  for (const b of [...backups].sort((x, y) => Date.parse(x.createdAt) - Date.parse(y.createdAt))) {
    const { key, name } = seriesOf(b)
    if (!series.has(key)) series.set(key, { key, name, points: [] })
    series.get(key).points.push(b)
  }
  const ordered = [...series.values()].sort((a, b) =>
    a.key === 'globals' ? 1 : b.key === 'globals' ? -1 : a.name.localeCompare(b.name),
  )
  const times = backups.map((b) => Date.parse(b.createdAt))
  let from = Math.min(...times)
  let to = Math.max(...times)
  if (to - from < HOUR) {
    from -= HOUR / 2
    to += HOUR / 2
  }
  const plotWidth = width - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const sizes = sizeTicks(Math.max(...backups.map((b) => b.bytes)))
  const x = (t) => MARGIN.left + ((t - from) / (to - from)) * plotWidth
  const y = (v) => MARGIN.top + plotHeight - (v / sizes.top) * plotHeight
  const round = (n) => Math.round(n * 10) / 10

  const grid = sizes.ticks.map((tick) =>
    svg(
      'g',
      { class: 'tick' },
      svg('line', {
        class: 'grid',
        x1: MARGIN.left,
        x2: width - MARGIN.right,
        y1: y(tick.value),
        y2: y(tick.value),
      }),
      svg(
        'text',
        { x: MARGIN.left - 6, y: y(tick.value), 'text-anchor': 'end', 'dominant-baseline': 'middle' },
        tick.label,
      ),
    ),
  )
  const bottom = MARGIN.top + plotHeight
  const xTicks = timeTicks(from, to, plotWidth).map((tick) =>
    svg(
      'g',
      { class: 'tick' },
      svg('line', { class: 'axis', x1: x(tick.value), x2: x(tick.value), y1: bottom, y2: bottom + 4 }),
      svg('text', { x: x(tick.value), y: bottom + 16, 'text-anchor': 'middle' }, tick.label),
    ),
  )
  const anomalies = []
  const lines = ordered.map((s, i) => {
    const colour = `series-${i % COLOURS}`
    const path = s.points.map(
      (b, j) => `${j ? 'L' : 'M'}${round(x(Date.parse(b.createdAt)))} ${round(y(b.bytes))}`,
    )
    const dots = s.points.map((b) => {
      if (b.anomaly) anomalies.push({ b, s })
      return svg(
        'circle',
        { class: 'dot', cx: round(x(Date.parse(b.createdAt))), cy: round(y(b.bytes)), r: 2.5 },
        svg('title', {}, `${s.name}: ${bytes(b.bytes)}, ${b.kind}, ${time(b.createdAt)}`),
      )
    })
    return svg(
      'g',
      { class: `series ${colour}`, 'data-series': s.name },
      svg('path', { class: 'line', d: path.join(' ') }),
      dots,
    )
  })
  const rings = anomalies.map(({ b, s }) =>
    svg(
      'circle',
      {
        class: 'anomaly',
        cx: round(x(Date.parse(b.createdAt))),
        cy: round(y(b.bytes)),
        r: 6,
        'data-backup': b.id,
      },
      svg('title', {}, `Size anomaly, ${s.name} (${b.kind}, ${time(b.createdAt)}): ${anomalyText(b)}`),
    ),
  )

  const summary =
    ordered
      .map((s) => {
        const latest = s.points[s.points.length - 1]
        return `${s.name}: ${s.points.length} file${s.points.length === 1 ? '' : 's'}, latest ${bytes(latest.bytes)}`
      })
      .join('; ') +
    (anomalies.length
      ? `. ${anomalies.length} size anomal${anomalies.length === 1 ? 'y' : 'ies'}: ${anomalies
          .map(({ b, s }) => `${s.name} at ${time(b.createdAt)}, ${anomalyText(b)}`)
          .join('; ')}.`
      : '. No size anomalies.')
  const chart = svg(
    'svg',
    {
      class: 'chart',
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: 'img',
      'aria-labelledby': 'backup-chart-title backup-chart-desc',
    },
    svg('title', { id: 'backup-chart-title' }, 'Backup size over time, by database'),
    svg('desc', { id: 'backup-chart-desc' }, summary),
    grid,
    svg('line', { class: 'axis', x1: MARGIN.left, x2: width - MARGIN.right, y1: bottom, y2: bottom }),
    svg('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: bottom }),
    xTicks,
    svg(
      'text',
      {
        class: 'axis-title',
        transform: `translate(14 ${MARGIN.top + plotHeight / 2}) rotate(-90)`,
        'text-anchor': 'middle',
      },
      'Size',
    ),
    svg(
      'text',
      { class: 'axis-title', x: MARGIN.left + plotWidth / 2, y: HEIGHT - 6, 'text-anchor': 'middle' },
      'Created',
    ),
    lines,
    rings,
  )
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Series' },
    ordered.map((s, i) =>
      h(
        'li',
        { 'data-series': s.name },
        h('span', { class: `swatch series-${i % COLOURS}`, 'aria-hidden': 'true' }),
        s.name,
        h('span', { class: 'sub inline' }, ` ${s.points.length} file${s.points.length === 1 ? '' : 's'}`),
      ),
    ),
    anomalies.length
      ? h(
          'li',
          { class: 'legend-anomaly' },
          h('span', { class: 'swatch ring', 'aria-hidden': 'true' }),
          `size anomaly (${anomalies.length})`,
        )
      : null,
  )
  return { chart, legend }
}
