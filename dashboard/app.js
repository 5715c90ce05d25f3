// Steward's status dashboard: schedules, jobs, runs and backups, over the public API with the operator's
// token (kept in sessionStorage). Live run updates come from GET /events (Server-Sent Events, read
// with fetch so the token can go in a header), with polling when the stream is unavailable. A run's
// details show its own log, followed live while it runs (run-log.js), and its progress
// (progress.js); schedules have sparklines (sparkline.js) and backups a size chart (backup-chart.js).
// Everything the API returns is put in the page as text, never as HTML.
import { backupChart } from './backup-chart.js'
import { $, h } from './dom.js'
import { bytes, duration, relative, roundDuration, time } from './format.js'
import { noteProgress, progressView, tickProgress } from './progress.js'
import { runLogView } from './run-log.js'
import { sparkline } from './sparkline.js'
import { readEvents } from './sse.js'

const ROLES = ['viewer', 'operator', 'admin']
const TOKEN_KEY = 'steward-token'
const POLL_MS = 2000
/** Rows fetched per page of a paged table (runs, schedules). */
const PAGE_SIZE = 50
/** The most a refresh re-reads at once to keep the schedules already shown (the API's page limit). */
const MAX_PAGE = 1000
/** How long the schedule search waits for typing to stop. */
const SEARCH_MS = 300
/** Finished runs per schedule in its sparkline. */
const RECENT_RUNS = 30
/** Backups in the size chart: the newest this many (the API's page limit). */
const CHART_BACKUPS = 500
const FINISHED = ['succeeded', 'failed', 'cancelled', 'skipped']

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? '',
  role: null,
  jobs: new Map(),
  schedules: [],
  schedulesCursor: null,
  scheduleFilter: {},
  runs: new Map(),
  runsCursor: null,
  runFilter: {},
  backupsCursor: null,
  /** The backups the size chart shows. */
  chartBackups: [],
  /** The run in the details dialog: {run, children, log}. */
  detail: null,
  live: null,
  editing: null,
  running: null,
  limiting: null,
}

const can = (role) => state.role !== null && ROLES.indexOf(state.role) >= ROLES.indexOf(role)

function setStatus(message, isError = false) {
  const status = $('#status')
  status.textContent = message
  status.classList.toggle('error', isError)
}

class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

/** Calls the API with the token: {status, data}; 4xx/5xx become ApiError with the API's own message. */
async function request(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${state.token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const data = res.headers.get('content-type')?.includes('application/json') ? await res.json() : null
  if (res.ok) return { status: res.status, data }
  const message = data?.message ?? res.statusText
  if (res.status === 401) {
    setStatus(`The token was refused (${message}). Enter a valid token.`, true)
    $('#token').focus()
  } else if (res.status === 403) {
    setStatus(`Not allowed: ${message}`, true)
  }
  throw new ApiError(res.status, message)
}

/** request(), for the data alone. */
const api = async (path, options) => (await request(path, options)).data

/** Runs an action, reporting failures in the status line (401/403 already are). */
async function attempt(action) {
  try {
    return await action()
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) {
      setStatus(err instanceof ApiError ? err.message : `Request failed: ${err.message}`, true)
    }
    return undefined
  }
}

// ---- formatting

function describeCron(cron) {
  try {
    return window.cronstrue ? window.cronstrue.toString(cron, { use24HourTimeFormat: true }) : ''
  } catch {
    return ''
  }
}

const stateBadge = (value) => h('span', { class: `state state-${value}` }, value)

/** A chain on one line: `template-embed {"missing":true} → other-job`. */
const chainText = (steps) =>
  steps
    .map((step) =>
      Object.keys(step.args ?? {}).length ? `${step.job} ${JSON.stringify(step.args)}` : step.job,
    )
    .join(' → ')

/** An error code for people: chain_stopped → "chain stopped". */
const errorCode = (code) => code.replaceAll('_', ' ')

/** A small link to the run whose success (or stop) led to this chain step. */
const afterLink = (parentId) =>
  h('button', { type: 'button', class: 'after', onclick: () => showRun(parentId) }, `after #${parentId}`)

/** The last run of a schedule or a job: its state (a link to its details) and duration. */
function lastRunCell(last) {
  return h(
    'td',
    {},
    last
      ? h(
          'button',
          {
            type: 'button',
            class: 'link',
            onclick: () => showRun(last.id),
            'aria-label': `Run ${last.id} details`,
          },
          stateBadge(last.state),
        )
      : '—',
    last ? h('span', { class: 'sub' }, duration(last.durationMs)) : null,
  )
}

// ---- token and identity

async function signIn(token) {
  state.token = token
  const me = await api('/me').catch((err) => {
    if (err instanceof ApiError && err.status === 404) return { name: 'unknown', role: 'admin' }
    throw err
  })
  state.role = me.role
  sessionStorage.setItem(TOKEN_KEY, token)
  $('#who').textContent = `Signed in as ${me.name} (${me.role})`
  $('#forget').hidden = false
  $('#token').value = ''
  $('#main').hidden = false
  setStatus('')
  await Promise.all([loadJobs(), loadSchedules(), loadRuns(), loadBackups()])
  startLive()
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY)
  state.token = ''
  state.role = null
  stopLive()
  $('#main').hidden = true
  $('#who').textContent = ''
  $('#forget').hidden = true
  setStatus('Token forgotten.')
}

// ---- jobs and schedules

async function loadJobs() {
  const { items } = await api('/jobs')
  state.jobs = new Map(items.map((job) => [job.name, job]))
  for (const select of document.querySelectorAll(
    '#run-filters select[name=job], #schedule-filters select[name=job]',
  )) {
    const current = select.value
    select.replaceChildren(
      h('option', { value: '' }, 'any'),
      ...items.map((job) => h('option', {}, job.name)),
    )
    select.value = current
  }
  renderJobs()
}

/** A limit in force, marked (with the default beside it) when an admin has overridden it. */
function limitCell(job, key, format = String) {
  const fallback = job.defaults?.[key]
  const overridden = fallback !== undefined && job[key] !== fallback
  return h(
    'td',
    overridden ? { class: 'overridden', title: `Overridden; the job's default is ${format(fallback)}` } : {},
    format(job[key]),
    overridden ? h('span', { class: 'sub' }, `default ${format(fallback)}`) : null,
  )
}

function renderJobs() {
  const rows = [...state.jobs.values()].map((job) =>
    h(
      'tr',
      { 'data-job': job.name },
      h(
        'td',
        { class: 'wrap' },
        h('strong', {}, job.name),
        h('span', { class: 'sub description', title: job.description }, job.description),
      ),
      limitCell(job, 'concurrency'),
      limitCell(job, 'maxAttempts'),
      limitCell(job, 'timeoutMs', roundDuration),
      h('td', { class: 'wrap' }, job.schedules?.length ? job.schedules.join(', ') : '—'),
      lastRunCell(job.lastRun),
      h(
        'td',
        {},
        h(
          'div',
          { class: 'actions' },
          can('operator')
            ? h('button', { type: 'button', onclick: () => openRunDialog(job.name) }, 'Run now')
            : null,
          can('admin')
            ? h('button', { type: 'button', onclick: () => openLimitsDialog(job) }, 'Limits')
            : null,
        ),
      ),
    ),
  )
  $('#jobs tbody').replaceChildren(...rows)
}

// Schedules are read a page at a time, by name (a deployment may have thousands): filters go to the
// API, "More schedules" appends the next page. Loads are numbered so a late answer for an older
// filter or refresh never overwrites a newer one.
let schedulesSeq = 0

/** A page of schedules, each with its latest finished runs for its sparkline. */
const scheduleQuery = (cursor, limit) =>
  pageQuery('/schedules', { ...state.scheduleFilter, recent: RECENT_RUNS }, cursor, limit)

/**
 * Reads the schedules again from the first page. A refresh keeps as many rows as are shown (up to
 * the API's page limit), so "More" pages already read do not vanish; `fromStart` (a new filter)
 * goes back to one page.
 */
async function loadSchedules({ fromStart = false } = {}) {
  const seq = ++schedulesSeq
  const limit = fromStart ? PAGE_SIZE : Math.min(MAX_PAGE, Math.max(PAGE_SIZE, state.schedules.length))
  const page = await api(scheduleQuery(null, limit))
  if (seq !== schedulesSeq) return
  state.schedules = page.items
  state.schedulesCursor = page.nextCursor
  renderSchedules()
}

async function moreSchedules() {
  if (!state.schedulesCursor) return
  const seq = ++schedulesSeq
  const page = await api(scheduleQuery(state.schedulesCursor))
  if (seq !== schedulesSeq) return
  const shown = new Set(state.schedules.map((s) => s.name))
  state.schedules.push(...page.items.filter((s) => !shown.has(s.name)))
  state.schedulesCursor = page.nextCursor
  renderSchedules()
}

/** The filter form as query parameters (empty ones are left out by pageQuery). */
function readScheduleFilter() {
  const form = new FormData($('#schedule-filters'))
  return {
    q: String(form.get('q') ?? '').trim(),
    job: form.get('job'),
    health: form.get('health'),
    enabled: form.get('enabled'),
  }
}

let searchTimer
/** A filter changed: back to the first page (typing in the search box waits for a pause). */
function filterSchedules(delay = 0) {
  clearTimeout(searchTimer)
  searchTimer = setTimeout(() => {
    const filter = readScheduleFilter()
    if (JSON.stringify(filter) === JSON.stringify(state.scheduleFilter)) return
    state.scheduleFilter = filter
    void attempt(() => loadSchedules({ fromStart: true }))
  }, delay)
}

const filtering = () => Object.values(state.scheduleFilter).some(Boolean)

function renderSchedules() {
  const rows = state.schedules.map((s) => {
    const enabled = h('input', {
      type: 'checkbox',
      role: 'switch',
      'aria-label': `${s.name} enabled`,
      checked: s.enabled,
      disabled: !can('admin'),
      onchange: (event) => setEnabled(s, event.target.checked),
    })
    return h(
      'tr',
      { 'data-schedule': s.name },
      h('td', {}, h('strong', {}, s.name)),
      h('td', {}, s.job, s.then ? h('span', { class: 'sub chain' }, `then → ${chainText(s.then)}`) : null),
      h(
        'td',
        { class: 'wrap' },
        h('code', {}, s.cron),
        h('span', { class: 'sub' }, describeCron(s.cron)),
        h('span', { class: 'sub' }, s.timezone),
      ),
      h(
        'td',
        {},
        s.nextRunAt ? time(s.nextRunAt) : 'not scheduled',
        s.nextRunAt
          ? h(
              'span',
              { class: 'sub countdown', 'data-at': s.nextRunAt },
              relative(Date.parse(s.nextRunAt) - Date.now()),
            )
          : null,
      ),
      lastRunCell(s.lastRun),
      h('td', { class: 'recent' }, sparkline(s, showRun)),
      h('td', {}, s.health ? h('span', { class: `health health-${s.health}` }, s.health) : '—'),
      h('td', {}, enabled),
      h(
        'td',
        {},
        h(
          'div',
          { class: 'actions' },
          can('operator')
            ? h('button', { type: 'button', onclick: () => openRunDialog(s.job, s.args, s.then) }, 'Run now')
            : null,
          can('admin') ? h('button', { type: 'button', onclick: () => openEditDialog(s) }, 'Edit') : null,
        ),
      ),
    )
  })
  const body = $('#schedules tbody')
  body.replaceChildren(...rows)
  if (rows.length === 0) {
    const empty = filtering() ? 'No schedules match these filters.' : 'No schedules yet.'
    body.append(h('tr', {}, h('td', { colspan: 9 }, empty)))
  }
  // How many rows there are, said once they change (a search narrowing the table, a page added).
  let shown = `${rows.length} schedule${rows.length === 1 ? '' : 's'}`
  if (state.schedulesCursor) shown += ' shown; more follow.'
  else shown += filtering() ? ' match.' : '.'
  $('#schedules-shown').textContent = rows.length ? shown : ''
  $('#more-schedules').hidden = !state.schedulesCursor
}

async function setEnabled(schedule, enabled) {
  const done = await attempt(() =>
    api(`/schedules/${encodeURIComponent(schedule.name)}`, { method: 'PATCH', body: { enabled } }),
  )
  if (done) setStatus(`${schedule.name} ${enabled ? 'enabled' : 'disabled'}.`)
  await attempt(loadSchedules)
}

// ---- run now

/** Run a job now; from a schedule, with the schedule's arguments and chain filled in. */
function openRunDialog(jobName, args = {}, then = null) {
  const job = state.jobs.get(jobName)
  state.running = jobName
  $('#run-dialog-title').textContent = `Run ${jobName} now`
  const props = Object.entries(job?.argsSchema?.properties ?? {})
  $('#run-schema').textContent = props.length
    ? `Arguments: ${props.map(([name, p]) => `${name}${p.type ? ` (${p.type})` : ''}`).join(', ')}`
    : 'This job takes no arguments.'
  $('#run-args').value = JSON.stringify(args ?? {}, null, 2)
  $('#run-then').value = then ? JSON.stringify(then, null, 2) : ''
  $('#run-unique').checked = false
  $('#run-error').textContent = ''
  $('#run-dialog').showModal()
  $('#run-args').focus()
}

async function submitRun(event) {
  event.preventDefault()
  let args
  try {
    args = JSON.parse($('#run-args').value || '{}')
  } catch (err) {
    $('#run-error').textContent = `The arguments are not JSON: ${err.message}`
    return
  }
  let chain
  const text = $('#run-then').value.trim()
  if (text) {
    try {
      chain = JSON.parse(text)
    } catch (err) {
      $('#run-error').textContent = `The chain (Then) is not JSON: ${err.message}`
      return
    }
    if (!Array.isArray(chain)) {
      $('#run-error').textContent = 'The chain (Then) must be a list of steps: [{"job": "…", "args": {…}}]'
      return
    }
  }
  // Undefined fields are left out of the JSON; an empty chain is no chain.
  const body = {
    args,
    then: chain?.length ? chain : undefined,
    unique: $('#run-unique').checked || undefined,
  }
  try {
    const { status, data: run } = await request(`/jobs/${encodeURIComponent(state.running)}/runs`, {
      method: 'POST',
      body,
    })
    $('#run-dialog').close()
    const next = run.then ? `, then ${chainText(run.then)}` : ''
    setStatus(
      status === 200
        ? `Run ${run.id} of ${run.job} is already ${run.state}; no new run was added.`
        : `Run ${run.id} of ${run.job} queued${next}.`,
    )
    upsertRun(run)
  } catch (err) {
    $('#run-error').textContent = err.message
  }
}

// ---- job limits (admin)

const LIMIT_INPUTS = {
  concurrency: '#limits-concurrency',
  maxAttempts: '#limits-max-attempts',
  timeoutMs: '#limits-timeout',
}

function openLimitsDialog(job) {
  state.limiting = job.name
  $('#limits-dialog-title').textContent = `Limits of ${job.name}`
  for (const [key, selector] of Object.entries(LIMIT_INPUTS)) {
    const input = $(selector)
    input.value = job[key] === job.defaults[key] ? '' : String(job[key])
    input.placeholder = String(job.defaults[key])
  }
  $('#limits-error').textContent = ''
  $('#limits-dialog').showModal()
}

async function submitLimits(event) {
  event.preventDefault()
  const body = {}
  for (const [key, selector] of Object.entries(LIMIT_INPUTS)) {
    const input = $(selector)
    if (input.validity.badInput) {
      $('#limits-error').textContent = `${input.labels[0].textContent} is not a number.`
      return
    }
    body[key] = input.value === '' ? null : Number(input.value) // empty: back to the default
  }
  try {
    await api(`/jobs/${encodeURIComponent(state.limiting)}`, { method: 'PATCH', body })
    $('#limits-dialog').close()
    setStatus(`Limits of ${state.limiting} saved.`)
    await loadJobs()
  } catch (err) {
    $('#limits-error').textContent = err.message
  }
}

// ---- edit a schedule, with a live preview

let previewTimer
let previewSeq = 0

function openEditDialog(schedule) {
  state.editing = schedule.name
  $('#edit-dialog-title').textContent = `Edit ${schedule.name}`
  $('#edit-cron').value = schedule.cron
  $('#edit-timezone').value = schedule.timezone
  $('#edit-error').textContent = ''
  $('#edit-dialog').showModal()
  $('#edit-cron').focus()
  preview()
}

function schedulePreview() {
  clearTimeout(previewTimer)
  previewTimer = setTimeout(preview, 250)
}

async function preview() {
  const cron = $('#edit-cron').value.trim()
  const timezone = $('#edit-timezone').value.trim()
  $('#edit-describe').textContent = describeCron(cron)
  const seq = ++previewSeq
  try {
    const { nextRuns } = await api('/schedules/preview', {
      method: 'POST',
      body: { cron, timezone, count: 5 },
    })
    if (seq !== previewSeq) return
    $('#edit-error').textContent = ''
    $('#edit-preview').replaceChildren(...nextRuns.map((at) => h('li', {}, time(at))))
  } catch (err) {
    if (seq !== previewSeq) return
    $('#edit-error').textContent = err.message
    $('#edit-preview').replaceChildren()
  }
}

async function submitEdit(event) {
  event.preventDefault()
  const body = { cron: $('#edit-cron').value.trim(), timezone: $('#edit-timezone').value.trim() }
  try {
    await api(`/schedules/${encodeURIComponent(state.editing)}`, { method: 'PATCH', body })
    $('#edit-dialog').close()
    setStatus(`${state.editing} saved.`)
    await loadSchedules()
  } catch (err) {
    $('#edit-error').textContent = err.message
  }
}

// ---- runs

/** A page of a listing: its filters (empty ones left out), the page size, and where to continue. */
function pageQuery(path, filter, cursor, limit = PAGE_SIZE) {
  const params = new URLSearchParams({ limit: String(limit) })
  for (const [key, value] of Object.entries(filter)) if (value) params.set(key, value)
  if (cursor) params.set('cursor', cursor)
  return `${path}?${params}`
}

const runQuery = (cursor) => pageQuery('/runs', state.runFilter, cursor)

async function loadRuns() {
  const page = await api(runQuery())
  state.runs = new Map(page.items.map((run) => [run.id, run]))
  state.runsCursor = page.nextCursor
  renderRuns()
}

async function moreRuns() {
  const page = await api(runQuery(state.runsCursor))
  for (const run of page.items) state.runs.set(run.id, run)
  state.runsCursor = page.nextCursor
  renderRuns()
}

function matchesFilter(run) {
  const f = state.runFilter
  if (f.job && run.job !== f.job) return false
  if (f.state && run.state !== f.state) return false
  if (f.trigger && run.trigger !== f.trigger) return false
  if (f.since && run.queuedAt < f.since) return false
  if (f.until && run.queuedAt >= f.until) return false
  return true
}

/** A run changed (live event or an action here): update its row, or add it when it is new. */
function upsertRun(run) {
  noteProgress(run)
  if (state.detail?.run.id === run.id) updateDetail(run)
  if (!matchesFilter(run)) {
    if (state.runs.delete(run.id)) renderRuns()
    return
  }
  const known = state.runs.has(run.id)
  const newest = Math.max(0, ...state.runs.keys())
  if (!known && run.id < newest && state.runs.size > 0 && state.runsCursor) return // on a later page
  state.runs.set(run.id, run)
  renderRuns()
  if (FINISHED.includes(run.state)) refreshSoon()
}

function renderRuns() {
  const runs = [...state.runs.values()].sort((a, b) => b.id - a.id)
  const rows = runs.map((run) =>
    h(
      'tr',
      { 'data-run': run.id },
      h(
        'td',
        {},
        h('button', { type: 'button', class: 'link', onclick: () => showRun(run.id) }, `#${run.id}`),
      ),
      h(
        'td',
        {},
        run.job,
        run.schedule ? h('span', { class: 'sub' }, run.schedule) : null,
        run.then ? h('span', { class: 'sub chain' }, `then → ${chainText(run.then)}`) : null,
      ),
      h(
        'td',
        {},
        stateBadge(run.state),
        run.state === 'queued' && run.waitingFor
          ? h('span', { class: 'waiting' }, ` · waiting for ${run.waitingFor}`)
          : null,
        run.error ? h('span', { class: 'sub', title: run.error.message }, errorCode(run.error.code)) : null,
        run.state === 'running' ? progressView(run, { compact: true }) : null,
      ),
      h(
        'td',
        {},
        run.trigger,
        run.attempt > 1 ? h('span', { class: 'sub' }, `attempt ${run.attempt}`) : null,
        run.parentId ? afterLink(run.parentId) : null,
      ),
      h('td', {}, time(run.queuedAt)),
      h('td', {}, duration(run.durationMs)),
      h(
        'td',
        {},
        can('operator') && (run.state === 'queued' || run.state === 'running')
          ? h('button', { type: 'button', class: 'danger', onclick: () => cancelRun(run.id) }, 'Cancel')
          : null,
      ),
    ),
  )
  $('#runs tbody').replaceChildren(...rows)
  $('#more-runs').hidden = !state.runsCursor
}

async function cancelRun(id) {
  const run = await attempt(() => api(`/runs/${id}/cancel`, { method: 'POST' }))
  if (run) {
    setStatus(`Cancel of run ${id} requested.`)
    upsertRun(run)
  }
}

// ---- run details: fields, progress and log

let detailSeq = 0

/** Shows a run in the details dialog, with its log (live while it runs). */
async function showRun(id) {
  const seq = ++detailSeq
  const run = await attempt(() => api(`/runs/${id}`))
  if (!run || seq !== detailSeq) return
  const children = await childrenOf(id)
  if (seq !== detailSeq) return
  state.detail?.log.stop()
  noteProgress(run)
  const log = runLogView(run, {
    api,
    token: () => state.token,
    onEnd: (ended) => upsertRun(ended),
  })
  state.detail = { run, children, log }
  $('#detail-title').textContent = `Run #${run.id}`
  renderDetail()
  $('#detail-log').replaceChildren(log.element)
  // A link inside the dialog shows another run in the same dialog.
  if (!$('#detail-dialog').open) $('#detail-dialog').showModal()
  void log.start()
}

/** The chain steps that followed a run (queued, run or skipped); none when they cannot be read. */
const childrenOf = (id) =>
  api(`/runs?parentId=${id}&limit=10`).then(
    (page) => page.items,
    () => [],
  )

function renderDetail() {
  const { run, children } = state.detail
  const json = (value) => h('pre', {}, JSON.stringify(value, null, 2))
  const runLink = (child) =>
    h(
      'button',
      { type: 'button', class: 'after', onclick: () => showRun(child.id) },
      `#${child.id} ${child.job} (${child.state})`,
    )
  const fields = [
    ['Job', run.job],
    ['Schedule', run.schedule ?? '—'],
    [
      'State',
      run.state === 'queued' && run.waitingFor
        ? [stateBadge(run.state), ` · waiting for ${run.waitingFor}`]
        : stateBadge(run.state),
    ],
    ['Trigger', run.parentId ? [run.trigger, ' ', afterLink(run.parentId)] : run.trigger],
    ['Then', run.then ? chainText(run.then) : '—'],
    ['Followed by', children.length ? children.map(runLink) : '—'],
    ['Attempt', `${run.attempt} of ${run.maxAttempts}${run.retryOf ? ` (retry of #${run.retryOf})` : ''}`],
    ['Instance', run.instance ?? '—'],
    ['Scheduled for', time(run.scheduledFor)],
    ['Queued', time(run.queuedAt)],
    ['Started', time(run.startedAt)],
    ['Finished', time(run.finishedAt)],
    ['Duration', duration(run.durationMs)],
    run.progress || run.state === 'running' ? ['Progress', detailProgress(run)] : null,
    ['Arguments', json(run.args)],
    ['Result', json(run.result)],
    ['Error', run.error ? `${run.error.code}: ${run.error.message}` : '—'],
  ].filter(Boolean)
  $('#detail').replaceChildren(
    ...fields.flatMap(([name, value]) => [h('dt', {}, name), h('dd', { 'data-field': name }, value)]),
  )
}

const detailProgress = (run) => progressView(run) ?? h('span', { class: 'sub' }, 'not reported')

/**
 * The shown run changed: a new state redraws its details (and reads its chain steps again once it
 * has ended); a new progress reading redraws the progress alone, leaving focus where it is.
 */
function updateDetail(run) {
  const shown = state.detail.run
  if (FINISHED.includes(shown.state) && !FINISHED.includes(run.state)) return // an older event
  state.detail.run = run
  const cell = $('#detail dd[data-field="Progress"]')
  if (run.state === shown.state && run.waitingFor === shown.waitingFor && cell) {
    cell.replaceChildren(detailProgress(run))
    return
  }
  renderDetail()
  if (FINISHED.includes(run.state)) {
    void childrenOf(run.id).then((children) => {
      if (state.detail?.run.id !== run.id) return
      state.detail.children = children
      renderDetail()
    })
  }
}

function closeDetail() {
  state.detail?.log.stop()
  state.detail = null
  detailSeq++
}

// ---- live updates

async function streamEvents(signal) {
  const res = await fetch('/events', { headers: { authorization: `Bearer ${state.token}` }, signal })
  if (!res.ok || !res.body) throw new ApiError(res.status, res.statusText)
  $('#live').textContent = 'live'
  await readEvents(res, async (event, data) => {
    if (event === 'run' && data) upsertRun(JSON.parse(data))
    else if (event === 'gap') await attempt(loadRuns)
  })
}

async function poll(signal) {
  $('#live').textContent = `updating every ${POLL_MS / 1000} s`
  while (!signal.aborted) {
    const page = await api(runQuery()).catch(() => null)
    if (page && !signal.aborted) for (const run of page.items.reverse()) upsertRun(run)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

/** SSE while it works; polling when /events is missing or the stream fails, retried every 15 s. */
function startLive() {
  stopLive()
  const controller = new AbortController()
  state.live = controller
  void (async () => {
    while (!controller.signal.aborted) {
      try {
        await streamEvents(controller.signal)
      } catch (err) {
        if (controller.signal.aborted) return
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return
      }
      if (controller.signal.aborted) return
      const fallback = new AbortController()
      const stop = () => fallback.abort()
      controller.signal.addEventListener('abort', stop, { once: true })
      setTimeout(stop, 15_000)
      await poll(fallback.signal)
      await attempt(loadRuns)
    }
  })()
}

function stopLive() {
  state.live?.abort()
  state.live = null
  $('#live').textContent = ''
}

let refreshTimer
/** Schedules show their last run: refresh them shortly after runs end (once for a burst). */
function refreshSoon() {
  clearTimeout(refreshTimer)
  refreshTimer = setTimeout(() => {
    void attempt(loadSchedules)
    void attempt(loadJobs)
    void attempt(loadBackups)
  }, 500)
}

function tick() {
  let due = false
  for (const el of document.querySelectorAll('.countdown')) {
    const left = Date.parse(el.dataset.at) - Date.now()
    el.textContent = relative(left)
    if (left < -1000) due = true
  }
  tickProgress()
  if (due && state.role) refreshSoon()
}

// ---- backups

async function loadBackups(more = false) {
  const query = more && state.backupsCursor ? `&cursor=${encodeURIComponent(state.backupsCursor)}` : ''
  const [page] = await Promise.all([api(`/backups?limit=50${query}`), more ? null : loadBackupChart()])
  state.backupsCursor = page.nextCursor
  const rows = page.items.map((b) => {
    const verified = b.verifiedAt
      ? `${b.verifyResult?.ok === false ? 'failed' : 'ok'}, ${relative(Date.parse(b.verifiedAt) - Date.now())}`
      : 'never'
    return h(
      'tr',
      { 'data-backup': b.id },
      h('td', {}, b.database),
      h('td', {}, b.kind),
      h('td', {}, h('code', {}, b.file)),
      h(
        'td',
        b.anomaly ? { class: 'anomalous', title: anomalyNote(b) } : {},
        bytes(b.bytes),
        b.anomaly ? h('span', { class: 'sub' }, `${b.anomaly.reason} than usual`) : null,
      ),
      h('td', {}, relative(Date.parse(b.createdAt) - Date.now())),
      h('td', { title: b.sha256 }, h('code', {}, `${b.sha256.slice(0, 12)}…`)),
      h('td', {}, verified),
      h(
        'td',
        {},
        h(
          'div',
          { class: 'actions' },
          can('operator') ? h('button', { type: 'button', onclick: () => download(b) }, 'Download') : null,
          can('operator') ? h('button', { type: 'button', onclick: () => verify(b) }, 'Verify') : null,
          can('admin')
            ? h('button', { type: 'button', class: 'danger', onclick: () => removeBackup(b) }, 'Delete')
            : null,
        ),
      ),
    )
  })
  const body = $('#backups tbody')
  if (more) body.append(...rows)
  else body.replaceChildren(...rows)
  if (!more && rows.length === 0) body.append(h('tr', {}, h('td', { colspan: 8 }, 'No backups yet.')))
  $('#more-backups').hidden = !state.backupsCursor
}

/** A size anomaly in words (GET /backups flags a file far smaller or larger than its predecessors). */
const anomalyNote = (b) =>
  `Size anomaly: ${bytes(b.bytes)} against a median of ${bytes(b.anomaly.medianBytes)} for the previous sets`

/** The size chart: the newest CHART_BACKUPS backups, read apart from the table's pages. */
async function loadBackupChart() {
  const page = await api(`/backups?limit=${CHART_BACKUPS}`)
  state.chartBackups = page.items
  renderBackupChart()
}

function renderBackupChart() {
  const figure = $('#backup-chart')
  figure.hidden = state.chartBackups.length === 0
  if (figure.hidden) return
  const width = Math.max(300, Math.floor(figure.clientWidth))
  const { chart, legend } = backupChart(state.chartBackups, width)
  const shown = state.chartBackups.length
  $('#backup-chart-plot').replaceChildren(chart)
  $('#backup-chart-legend').replaceChildren(legend)
  $('#backup-chart-caption').textContent =
    `Size of each backup file over time, one line per database${shown >= CHART_BACKUPS ? ` (the newest ${shown} files)` : ''}; ` +
    'files flagged as far smaller or larger than usual are ringed.'
}

let resizeTimer
/** The chart is drawn at the width it has, so its text stays readable: again when that changes. */
function redrawOnResize() {
  clearTimeout(resizeTimer)
  resizeTimer = setTimeout(() => {
    if (state.chartBackups.length && !$('#main').hidden) renderBackupChart()
  }, 150)
}

/** Through fetch (a link cannot carry the token): the file is held in memory, so use curl for big ones. */
async function download(backup) {
  setStatus(`Downloading ${backup.file} (${bytes(backup.bytes)})…`)
  const res = await fetch(`/backups/${backup.id}/download`, {
    headers: { authorization: `Bearer ${state.token}` },
  })
  if (!res.ok) {
    setStatus(`Download failed: ${res.status} ${res.statusText}`, true)
    return
  }
  const url = URL.createObjectURL(await res.blob())
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? backup.file
  const link = h('a', { href: url, download: name })
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
  setStatus(`Downloaded ${name}.`)
}

async function verify(backup) {
  setStatus(`Verifying ${backup.file}: restoring it into a scratch database…`)
  const done = await attempt(() => api(`/backups/${backup.id}/verify`, { method: 'POST' }))
  if (done)
    setStatus(
      `${backup.file}: ${done.verifyResult?.ok ? 'verified' : 'verification failed'}.`,
      !done.verifyResult?.ok,
    )
  await attempt(() => loadBackups())
}

async function removeBackup(backup) {
  if (!window.confirm(`Delete ${backup.file}? The file is removed from disk.`)) return
  const done = await attempt(() => api(`/backups/${backup.id}`, { method: 'DELETE' }))
  if (done !== undefined) setStatus(`${backup.file} deleted.`)
  await attempt(() => loadBackups())
}

// ---- wiring

function wire() {
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const token = $('#token').value.trim()
    if (!token) {
      setStatus('Enter a token first.', true)
      return
    }
    void attempt(() => signIn(token))
  })
  $('#forget').addEventListener('click', signOut)
  $('#refresh-schedules').addEventListener('click', () => attempt(loadSchedules))
  $('#refresh-jobs').addEventListener('click', () => attempt(loadJobs))
  $('#refresh-backups').addEventListener('click', () => attempt(() => loadBackups()))
  $('#more-runs').addEventListener('click', () => attempt(moreRuns))
  $('#more-schedules').addEventListener('click', () => attempt(moreSchedules))
  const scheduleFilters = $('#schedule-filters')
  scheduleFilters.addEventListener('submit', (event) => {
    event.preventDefault() // Enter in the search box: search now
    filterSchedules()
  })
  scheduleFilters.addEventListener('input', (event) =>
    filterSchedules(event.target.name === 'q' ? SEARCH_MS : 0),
  )
  $('#more-backups').addEventListener('click', () => attempt(() => loadBackups(true)))
  $('#run-filters').addEventListener('submit', (event) => {
    event.preventDefault()
    const form = new FormData(event.target)
    const iso = (value) => (value ? new Date(value).toISOString() : '')
    state.runFilter = {
      job: form.get('job'),
      state: form.get('state'),
      trigger: form.get('trigger'),
      since: iso(form.get('since')),
      until: iso(form.get('until')),
    }
    void attempt(loadRuns)
  })
  $('#run-form').addEventListener('submit', submitRun)
  $('#edit-form').addEventListener('submit', submitEdit)
  $('#limits-form').addEventListener('submit', submitLimits)
  $('#edit-cron').addEventListener('input', schedulePreview)
  $('#edit-timezone').addEventListener('input', schedulePreview)
  $('#detail-dialog').addEventListener('close', closeDetail)
  window.addEventListener('resize', redrawOnResize)
  for (const button of document.querySelectorAll('dialog .close')) {
    button.addEventListener('click', () => button.closest('dialog').close())
  }
  setInterval(tick, 1000)
}

wire()
if (state.token) void attempt(() => signIn(state.token))
else $('#token').focus()
