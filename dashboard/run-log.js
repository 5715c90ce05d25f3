// A run's own log in the details dialog (GET /runs/{id}/logs). A finished run's lines are read a
// page at a time (after → nextCursor); a queued or running run's are followed live (follow=true,
// Server-Sent Events read with fetch for the token), each line appended as it arrives, until the
// stream's `event: end` brings the finished run. A stream that breaks or is refused (too many open
// for the token) gives way to reading pages every few seconds, then is tried again.
import { h } from './dom.js'
import { clock } from './format.js'
import { readEvents } from './sse.js'

/** Lines per page read. */
const PAGE = 1000
/** Lines read without asking; past this, "More lines" reads the next page. */
const AUTO_LINES = 5000
/** How long to wait before catching up after a stream broke. */
const RETRY_MS = 2000
const ENDED = new Set(['succeeded', 'failed', 'cancelled', 'skipped'])

/** A field's value, short: strings bare unless they need quotes, the rest as JSON. */
function fieldValue(value) {
  if (typeof value === 'string') return /^[^\s"=]{1,80}$/.test(value) ? value : JSON.stringify(value)
  return JSON.stringify(value)
}

/** Fields on one line: `rows=120 table=users err={"type":"Error","message":"…"}`. */
export const compactFields = (fields) =>
  Object.entries(fields ?? {})
    .map(([key, value]) => `${key}=${fieldValue(value)}`)
    .join(' ')

function lineView(line) {
  const fields = compactFields(line.fields)
  return h(
    'li',
    { class: `log-line level-${line.level}`, 'data-seq': line.seq },
    h('time', { datetime: line.at, title: new Date(line.at).toLocaleString() }, clock(line.at)),
    h('span', { class: 'log-level' }, line.level),
    h('span', { class: 'log-message' }, line.message),
    fields ? h('span', { class: 'log-fields' }, fields) : null,
  )
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true },
    )
  })

/**
 * The log view of `run`. `api(path)` reads JSON with the token, `token()` is the token (for the
 * stream), `onEnd(run)` is told the finished run when a followed run ends. Call start() once the
 * element is in the page, stop() when the dialog closes or shows another run.
 */
export function runLogView(run, { api, token, onEnd }) {
  const controller = new AbortController()
  const { signal } = controller
  const list = h('ol', { class: 'log', role: 'log', 'aria-label': `Log of run ${run.id}` })
  const note = h('p', { class: 'hint log-note', 'aria-live': 'polite' })
  const more = h('button', { type: 'button', class: 'log-more', hidden: true }, 'More lines')
  const element = h(
    'section',
    { class: 'run-log', 'aria-label': 'Log' },
    h('h3', {}, 'Log'),
    list,
    more,
    note,
  )
  let last = 0
  let shown = 0

  function append(lines) {
    const fresh = lines.filter((line) => line.seq > last)
    if (fresh.length === 0) return
    // Keep following the end, unless the reader has scrolled up to read.
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24
    list.append(...fresh.map(lineView))
    last = fresh[fresh.length - 1].seq
    shown += fresh.length
    if (atEnd) list.scrollTop = list.scrollHeight
  }

  const say = (text) => {
    note.textContent = text
  }

  /** Reads pages after the last line shown, up to `upTo` lines in all; true when there are more. */
  async function readPages(upTo) {
    for (;;) {
      const page = await api(`/runs/${run.id}/logs?after=${last}&limit=${PAGE}`)
      if (signal.aborted) return false
      append(page.items)
      if (!page.nextCursor) return false
      if (shown >= upTo) return true
    }
  }

  async function readFinished() {
    const left = await readPages(AUTO_LINES)
    more.hidden = !left
    say(shown === 0 ? 'This run logged nothing.' : left ? `${shown} lines shown; more follow.` : '')
  }

  more.addEventListener('click', async () => {
    more.disabled = true
    try {
      await readFinished()
    } catch (err) {
      say(`Could not read more lines: ${err.message}`)
    } finally {
      more.disabled = false
    }
  })

  /** One stream: resolves with the run if it ended, null if the stream closed before that. */
  async function stream() {
    const res = await fetch(`/runs/${run.id}/logs?follow=true&after=${last}`, {
      headers: { authorization: `Bearer ${token()}`, accept: 'text/event-stream' },
      signal,
    })
    if (!res.ok || !res.body) throw new Error(`${res.status} ${res.statusText}`)
    let ended = null
    say(run.state === 'queued' ? 'Waiting for the run to start…' : 'Following the log as the run runs.')
    await readEvents(res, (event, data) => {
      if (event === 'log' && data) {
        append([JSON.parse(data)])
        if (note.textContent.startsWith('Waiting')) say('Following the log as the run runs.')
      } else if (event === 'end') {
        const value = data ? JSON.parse(data) : null
        ended = value && ENDED.has(value.state) ? value : null
        return false
      }
      return true
    })
    return ended
  }

  async function follow() {
    while (!signal.aborted) {
      let ended = null
      try {
        ended = await stream()
      } catch {
        if (signal.aborted) return
        say('Live log unavailable; reading it every few seconds.')
      }
      if (!ended) {
        // Catch up by pages, and see whether the run ended meanwhile.
        await sleep(RETRY_MS, signal)
        if (signal.aborted) return
        try {
          await readPages(Number.POSITIVE_INFINITY)
          const now = await api(`/runs/${run.id}`)
          if (ENDED.has(now.state)) ended = now
        } catch (err) {
          if (err.status === 401 || err.status === 403 || err.status === 404) {
            say(`The log cannot be read: ${err.message}`)
            return
          }
          continue
        }
      }
      if (ended && !signal.aborted) {
        await readPages(Number.POSITIVE_INFINITY).catch(() => {})
        say(shown === 0 ? 'This run logged nothing.' : '')
        onEnd(ended)
        return
      }
    }
  }

  return {
    element,
    async start() {
      try {
        if (ENDED.has(run.state)) await readFinished()
        else await follow()
      } catch (err) {
        if (!signal.aborted) say(`Could not read the log: ${err.message}`)
      }
    },
    stop: () => controller.abort(),
  }
}
