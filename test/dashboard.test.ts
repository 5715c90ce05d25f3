// The status dashboard in headless Chromium, against a real server on a real port: sign in with a
// token, run a job and watch it finish without reloading, see the API's message for a bad cron,
// disable a schedule, cancel a running run; chains (on schedules, from Run now, stopped by a
// failure), runs waiting for a slot, job limits; a run's log (live while it runs, in pages once it
// has finished) and progress; schedule sparklines; the backup size chart; roles decide the buttons;
// no console errors.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import t from 'tap'
import { chatty, testJobs } from './fixtures/jobs.js'
import { buildTestApp, eventually, TEST_ADMIN_TOKEN } from './helper.js'
import { browserAvailable, launchBrowser, openPage } from './support/browser.js'
import { ROOT } from './support/process.js'

async function signIn(page: Page, base: string, token: string) {
  await page.goto(base)
  await page.getByLabel('API token').fill(token)
  await page.getByRole('button', { name: 'Use token' }).click()
  await page.locator('#schedules tbody tr').first().waitFor()
}

const scheduleRow = (page: Page, name: string) => page.locator(`#schedules tr[data-schedule="${name}"]`)
const runRow = (page: Page, id: number) => page.locator(`#runs tr[data-run="${id}"]`)
const jobRow = (page: Page, name: string) => page.locator(`#jobs tr[data-job="${name}"]`)

/** The names of the schedule rows shown, in order. */
const shownSchedules = (page: Page) =>
  page
    .locator('#schedules tbody tr[data-schedule]')
    .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-schedule') ?? ''))

/** Waits until the schedules table shows exactly these names, in this order. */
async function waitForSchedules(page: Page, expected: string[], what: string): Promise<string[]> {
  return await eventually(
    async () => {
      const shown = await shownSchedules(page)
      return JSON.stringify(shown) === JSON.stringify(expected) ? shown : undefined
    },
    5000,
    what,
  )
}

async function newestRunId(app: FastifyInstance, job: string): Promise<number> {
  return await eventually(async () => (await app.inject(`/runs?job=${job}&limit=1`)).json().items[0]?.id)
}

/** Every line of a run's log, read from the API page by page. */
async function logLines(app: FastifyInstance, id: number): Promise<Array<{ seq: number; message: string }>> {
  const lines = []
  let after = 0
  for (;;) {
    const page = (await app.inject(`/runs/${id}/logs?after=${after}&limit=1000`)).json()
    lines.push(...page.items)
    if (!page.nextCursor) return lines
    after = Number(page.nextCursor)
  }
}

/** The seqs of the log lines the details dialog shows. */
const shownSeqs = (page: Page) =>
  page
    .locator('#detail-dialog [role=log] li')
    .evaluateAll((items) => items.map((li) => Number(li.getAttribute('data-seq'))))

/** Finished runs of a schedule, written straight into job_runs: [state, duration in ms] each, oldest first. */
async function recordRuns(
  app: FastifyInstance,
  schedule: string,
  job: string,
  runs: Array<[string, number]>,
) {
  const ids: number[] = []
  for (const [i, [state, ms]] of runs.entries()) {
    const finished = new Date(Date.now() - (runs.length - i) * 3_600_000)
    const [row] = await app.sql<{ id: string }[]>`
      insert into job_runs (job, schedule, trigger, state, args, started_at, finished_at)
      values (${job}, ${schedule}, 'schedule', ${state}, '{}', ${new Date(finished.getTime() - ms)}, ${finished})
      returning id`
    ids.push(Number(row?.id))
  }
  return ids
}

/** Backup rows (no files: the chart and the table read rows), `hours` ago each, with an anomaly or not. */
async function recordBackups(
  app: FastifyInstance,
  backups: Array<{ database: string; bytes: number; hours: number; scope?: string; anomaly?: object }>,
) {
  for (const [i, b] of backups.entries()) {
    const at = new Date(Date.now() - b.hours * 3_600_000)
    const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15)
    const dir = `hourly/backup_${stamp}_${i}`
    const name = b.scope === 'globals' ? 'globals.sql' : `${b.database}.sql`
    await app.sql`
      insert into backups (kind, scope, database, file, set_dir, format, bytes, sha256, created_at, anomaly)
      values ('hourly', ${b.scope ?? 'database'}, ${b.database}, ${`${dir}/${name}`}, ${dir}, 'plain', ${b.bytes},
              ${'ab'.repeat(32)}, ${at}, ${b.anomaly ? app.sql.json(b.anomaly as never) : null})`
  }
}

t.test('the dashboard, end to end', async (t) => {
  if (!browserAvailable(t)) return
  const app = await buildTestApp(t, { jobs: [...testJobs, chatty], env: { SCHEDULER_ENABLED: 'false' } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launchBrowser(t)
  const { page, errors } = await openPage(browser)

  await page.goto(base)
  t.equal(await page.evaluate(() => document.activeElement?.id), 'token', 'the token field has the focus')
  await page.getByLabel('API token').fill('stw_wrong')
  await page.getByRole('button', { name: 'Use token' }).click()
  await page.getByRole('status').filter({ hasText: 'The token was refused' }).waitFor()
  t.ok(await page.locator('#main').isHidden(), 'nothing is shown without a valid token')
  errors.length = 0 // the 401 itself is logged by the browser as a failed resource

  await signIn(page, base, TEST_ADMIN_TOKEN)
  t.match(await page.locator('#who').textContent(), /STEWARD_ADMIN_TOKEN \(admin\)/)
  t.match(await scheduleRow(page, 'backup-hourly').textContent(), /Every hour/, 'cron in plain words')

  t.test('run cache-clear and watch it succeed without reloading', async (t) => {
    await scheduleRow(page, 'cache-clear').getByRole('button', { name: 'Run now' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Run' }).click()
    const id = await newestRunId(app, 'cache-clear')
    await runRow(page, id).locator('.state-succeeded').waitFor({ timeout: 10_000 })
    t.pass(`run ${id} shown as succeeded`)
  })

  t.test('arguments the job refuses: the API says why, in the dialog', async (t) => {
    await scheduleRow(page, 'cache-clear').getByRole('button', { name: 'Run now' }).click()
    await page.getByLabel('Arguments (JSON)').fill('{"all": "yes"}')
    await page.getByRole('dialog').getByRole('button', { name: 'Run' }).click()
    const alert = page.locator('#run-error')
    await alert.filter({ hasText: /all/ }).waitFor()
    t.match(await alert.textContent(), /boolean/)
    await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click()
  })

  t.test('an invalid cron shows the API message inline; a valid one previews and saves', async (t) => {
    await scheduleRow(page, 'cache-clear').getByRole('button', { name: 'Edit' }).click()
    const cron = page.getByLabel('Cron expression')
    await cron.fill('61 * * * *')
    const expected = (
      await app.inject({
        method: 'POST',
        url: '/schedules/preview',
        payload: { cron: '61 * * * *', count: 5 },
      })
    ).json().message
    await page.locator('#edit-error').filter({ hasText: expected }).waitFor()
    t.equal(await page.locator('#edit-error').textContent(), expected, "the API's own words")

    await cron.fill('15 4 * * *')
    await page.locator('#edit-preview li').nth(4).waitFor()
    t.equal(await page.locator('#edit-error').textContent(), '')
    await page.getByRole('button', { name: 'Save' }).click()
    await eventually(async () =>
      (await app.inject('/schedules/cache-clear')).json().cron === '15 4 * * *' ? true : undefined,
    )
    await scheduleRow(page, 'cache-clear').filter({ hasText: '15 4 * * *' }).waitFor()
  })

  t.test('disable a schedule with its switch', async (t) => {
    await scheduleRow(page, 'prune-runs').getByRole('switch').click()
    const schedule = await eventually(async () => {
      const s = (await app.inject('/schedules/prune-runs')).json()
      return s.enabled === false ? s : undefined
    })
    t.equal(schedule.enabled, false, 'GET /schedules says disabled')
  })

  t.test('cancel a running run', async (t) => {
    const run = (
      await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args: { ms: 20_000 } } })
    ).json()
    const row = runRow(page, run.id)
    await row.locator('.state-running').waitFor({ timeout: 10_000 })
    await row.getByRole('button', { name: 'Cancel' }).click()
    await row.locator('.state-cancelled').waitFor({ timeout: 10_000 })
    t.equal((await app.inject(`/runs/${run.id}`)).json().state, 'cancelled')
  })

  t.test('run details', async (t) => {
    const id = await newestRunId(app, 'sleeper')
    await runRow(page, id)
      .getByRole('button', { name: `#${id}` })
      .click()
    const dialog = page.getByRole('dialog')
    t.match(await dialog.textContent(), /"ms": 20000/)
    t.match(await dialog.textContent(), /cancelled/)
    await dialog.getByRole('button', { name: 'Close' }).click()
  })

  t.test('a schedule shows its chain', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/schedules',
      payload: {
        name: 'nightly-nap',
        job: 'sleeper',
        cron: '0 3 * * *',
        args: { ms: 0 },
        then: [{ job: 'cache-clear', args: { all: true } }],
      },
    })
    t.equal(res.statusCode, 201, res.body)
    await page.locator('#refresh-schedules').click()
    await scheduleRow(page, 'nightly-nap').waitFor()
    t.match(await scheduleRow(page, 'nightly-nap').textContent(), 'then → cache-clear {"all":true}')
  })

  t.test('Run now with a chain: bad JSON and unknown jobs are explained, a good chain is sent', async (t) => {
    await jobRow(page, 'sleeper').getByRole('button', { name: 'Run now' }).click()
    const dialog = page.getByRole('dialog')
    await page.getByLabel('Arguments (JSON)').fill('{"ms": 0}')
    const chain = page.getByLabel('Then (JSON, optional)')
    const alert = page.locator('#run-error')

    await chain.fill('[{"job": ')
    await dialog.getByRole('button', { name: 'Run' }).click()
    await alert.filter({ hasText: 'The chain (Then) is not JSON' }).waitFor()

    await chain.fill('[{"job": "no-such-job"}]')
    await dialog.getByRole('button', { name: 'Run' }).click()
    await alert.filter({ hasText: 'no-such-job' }).waitFor()
    t.match(await alert.textContent(), /then\[0\]\.job "no-such-job" does not exist/, "the API's message")

    const before = await newestRunId(app, 'sleeper')
    await chain.fill('[{"job": "cache-clear", "args": {"all": true}}]')
    await page.getByLabel(/Unique/).check()
    await dialog.getByRole('button', { name: 'Run' }).click()
    await page.locator('#run-dialog').waitFor({ state: 'hidden' })
    const run = await eventually(async () => {
      const newest = (await app.inject('/runs?job=sleeper&limit=1')).json().items[0]
      return newest && newest.id !== before ? newest : undefined
    })
    t.same(run.then, [{ job: 'cache-clear', args: { all: true } }], 'the run carries the chain')
    t.same(run.args, { ms: 0 })

    // The step that follows it says which run it came after.
    const child = await eventually(async () => (await app.inject(`/runs?parentId=${run.id}`)).json().items[0])
    t.equal(child.job, 'cache-clear')
    t.equal(child.trigger, 'chain')
    await runRow(page, child.id)
      .filter({ hasText: `after #${run.id}` })
      .waitFor()
  })

  t.test('a queued run waiting for a slot says what it waits for', async (t) => {
    const trigger = async (args: Record<string, unknown>) =>
      (await app.inject({ method: 'POST', url: '/jobs/sleeper/runs', payload: { args } })).json()
    const holder = await trigger({ ms: 20_000, label: 'holds the only slot' })
    await runRow(page, holder.id).locator('.state-running').waitFor({ timeout: 10_000 })
    const waiting = await trigger({ ms: 0, label: 'waits' })
    const row = runRow(page, waiting.id)
    await row.filter({ hasText: 'waiting for job concurrency' }).waitFor({ timeout: 10_000 })
    t.match(await row.locator('td').nth(2).textContent(), 'queued · waiting for job concurrency')
    t.equal((await app.inject(`/runs/${waiting.id}`)).json().waitingFor, 'job concurrency')

    // Once it runs, the reason goes.
    await app.inject({ method: 'POST', url: `/runs/${holder.id}/cancel` })
    await row.locator('.state-succeeded').waitFor({ timeout: 10_000 })
    t.notMatch(await row.textContent(), 'waiting for')
  })

  t.test('a chain stopped by a failure is shown as skipped, after the run that failed', async (t) => {
    const failed = (
      await app.inject({
        method: 'POST',
        url: '/jobs/boom/runs',
        payload: { then: [{ job: 'cache-clear' }] },
      })
    ).json()
    const skipped = await eventually(
      async () => (await app.inject(`/runs?parentId=${failed.id}`)).json().items[0],
    )
    const row = runRow(page, skipped.id)
    await row.locator('.state-skipped').waitFor({ timeout: 10_000 })
    t.match(await row.textContent(), /chain stopped/)
    t.match(await row.textContent(), `after #${failed.id}`)
    await row.getByRole('button', { name: `after #${failed.id}` }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByRole('heading', { name: `Run #${failed.id}`, exact: true }).waitFor()
    t.match(await dialog.textContent(), `#${skipped.id} cache-clear (skipped)`, 'the parent lists its step')
    await dialog.getByRole('button', { name: 'Close' }).click()
  })

  t.test("an admin changes a job's limits; overridden ones are marked", async (t) => {
    await jobRow(page, 'stuck').getByRole('button', { name: 'Limits' }).click()
    await page.getByLabel('Concurrency').fill('2')
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click()
    const cell = jobRow(page, 'stuck').locator('td.overridden')
    await cell.filter({ hasText: 'default 1' }).waitFor()
    t.equal((await app.inject('/jobs/stuck')).json().concurrency, 2)

    await jobRow(page, 'stuck').getByRole('button', { name: 'Limits' }).click()
    t.equal(await page.getByLabel('Concurrency').inputValue(), '2', 'the override is filled in')
    await page.getByLabel('Concurrency').fill('') // empty: back to the default
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click()
    await cell.waitFor({ state: 'detached' })
    t.equal((await app.inject('/jobs/stuck')).json().concurrency, 1)
  })

  t.test('schedules come a page at a time; search and filters are done by the API', async (t) => {
    const names = Array.from({ length: 60 }, (_, i) => `bulk-${String(i + 1).padStart(3, '0')}`)
    let cleaned = false
    const removeAll = async () => {
      for (const name of names) await app.inject({ method: 'DELETE', url: `/schedules/${name}` })
      cleaned = true
    }
    t.teardown(async () => {
      if (!cleaned) await removeAll() // this subtest failed half-way: leave the others the defaults
    })
    const created: number[] = []
    for (const name of names) {
      const res = await app.inject({
        method: 'POST',
        url: '/schedules',
        payload: { name, job: 'cache-clear', cron: '0 0 1 1 *' },
      })
      created.push(res.statusCode)
    }
    t.ok(
      created.every((code) => code === 201),
      'the bulk schedules are created',
    )
    const listNames = async (query: string): Promise<string[]> =>
      (await app.inject(`/schedules?${query}`)).json().items.map((s: { name: string }) => s.name)
    const requested: URL[] = []
    const onRequest = (request: { url(): string }) => {
      const url = new URL(request.url())
      if (url.pathname === '/schedules') requested.push(url)
    }
    page.on('request', onRequest)
    // The filters, by their accessible names.
    const filters = page.locator('#schedule-filters')
    const scheduleFilter = (name: string) => filters.getByRole('combobox', { name, exact: true })
    const search = filters.getByRole('searchbox', { name: 'Name contains', exact: true })
    for (const name of ['Job', 'Health', 'Enabled']) t.equal(await scheduleFilter(name).count(), 1, name)
    t.equal(await search.count(), 1, 'the search box')
    t.teardown(() => {
      page.off('request', onRequest)
    })

    // The first page only, by name; "More schedules" adds the rest.
    await page.locator('#refresh-schedules').click()
    const firstPage = await listNames('limit=50')
    const shown = await waitForSchedules(page, firstPage, 'the first page of schedules')
    t.equal(shown.length, 50, 'one page of 50 rows')
    t.notOk(shown.includes('bulk-060'), 'not every schedule is fetched')
    t.match(await page.locator('#schedules-shown').textContent(), '50 schedules shown; more follow')
    requested.length = 0
    await page.getByRole('button', { name: 'More schedules' }).click()
    await waitForSchedules(page, await listNames('limit=1000'), 'every schedule, after More')
    t.ok(
      requested.some((url) => url.searchParams.has('cursor')),
      'the next page is read with the cursor',
    )
    await page.locator('#more-schedules').waitFor({ state: 'hidden' })
    t.ok(await scheduleRow(page, 'bulk-060').isVisible(), 'the last bulk schedule is shown')
    t.ok(await scheduleRow(page, 'cache-clear').isVisible(), 'and the schedules after it')

    // Searching by name: one request once typing pauses, not one per key.
    requested.length = 0
    await search.pressSequentially('bulk-05', { delay: 30 })
    const fifties = names.filter((name) => name.startsWith('bulk-05'))
    t.equal(fifties.length, 10)
    await waitForSchedules(page, fifties, 'bulk-050 to bulk-059')
    const searched = requested.filter((url) => url.searchParams.has('q'))
    t.equal(searched.at(-1)?.searchParams.get('q'), 'bulk-05', 'q is sent')
    t.equal(searched.at(-1)?.searchParams.get('limit'), '50', 'from the first page')
    t.notOk(searched.at(-1)?.searchParams.has('cursor'), 'not from the page shown before')
    t.ok(new Set(searched.map((url) => url.searchParams.get('q'))).size < 7, 'the search is debounced')
    t.ok(await page.locator('#more-schedules').isHidden(), 'no More for one page')

    // Health: none of the new schedules is late.
    await search.fill('')
    const late = page.waitForResponse((res) => new URL(res.url()).searchParams.get('health') === 'late')
    await scheduleFilter('Health').selectOption('late')
    t.equal((await late).status(), 200, 'health=late is sent')
    const lateNames = await listNames('health=late&limit=50')
    await waitForSchedules(page, lateNames, 'the late schedules')
    t.notOk(
      lateNames.some((name) => name.startsWith('bulk-')),
      'no bulk schedule is late',
    )
    if (lateNames.length === 0) {
      t.match(await page.locator('#schedules tbody').textContent(), 'No schedules match these filters.')
    }

    // Enabled, with a search.
    await app.inject({ method: 'PATCH', url: '/schedules/bulk-007', payload: { enabled: false } })
    await search.fill('bulk')
    await scheduleFilter('Health').selectOption('')
    const disabled = page.waitForResponse((res) => new URL(res.url()).searchParams.get('enabled') === 'false')
    await scheduleFilter('Enabled').selectOption('false')
    await disabled
    await waitForSchedules(page, ['bulk-007'], 'the disabled bulk schedule')
    t.equal(await scheduleRow(page, 'bulk-007').getByRole('switch').isChecked(), false)

    // Job: the select lists the jobs; another job's schedules do not match.
    await scheduleFilter('Enabled').selectOption('')
    await search.fill('bulk-00')
    const noughts = names.slice(0, 9)
    await waitForSchedules(page, noughts, 'bulk-001 to bulk-009')
    const scheduleJob = scheduleFilter('Job')
    await scheduleJob.selectOption('cache-clear')
    await eventually(async () =>
      requested.at(-1)?.searchParams.get('job') === 'cache-clear' ? true : undefined,
    )
    await waitForSchedules(page, noughts, 'the bulk schedules of cache-clear')
    await scheduleJob.selectOption('sleeper')
    await waitForSchedules(page, [], 'no bulk schedule of sleeper')
    t.match(await page.locator('#schedules tbody').textContent(), 'No schedules match these filters.')

    // Back to no filter; the bulk schedules go, and the defaults are on the first page again.
    await search.fill('')
    await scheduleJob.selectOption('') // at once, with the emptied search
    await removeAll()
    await page.locator('#refresh-schedules').click()
    await waitForSchedules(page, await listNames('limit=50'), 'the schedules without the bulk ones')
    t.ok(await scheduleRow(page, 'cache-clear').isVisible())
  })

  t.test("a running run's log arrives live, with its progress and the time left", async (t) => {
    const follows: string[] = []
    const onRequest = (request: { url(): string }) => {
      if (request.url().includes('/logs')) follows.push(request.url())
    }
    page.on('request', onRequest)
    t.teardown(() => {
      page.off('request', onRequest)
    })
    const run = (
      await app.inject({
        method: 'POST',
        url: '/jobs/chatty/runs',
        payload: { args: { steps: 10, ms: 1000 } },
      })
    ).json()
    const row = runRow(page, run.id)
    await row.locator('.state-running').waitFor({ timeout: 10_000 })
    // The runs table shows a small bar once the first reading is stored.
    await row.locator('.progress.compact [role=progressbar]').waitFor({ timeout: 5000 })
    t.match(await row.locator('.progress-percent').textContent(), /^\d+%$/, 'the table says the percentage')

    await row.getByRole('button', { name: `#${run.id}` }).click()
    const dialog = page.locator('#detail-dialog')
    const log = dialog.getByRole('log')
    await log.locator('li', { hasText: 'step 2 of 10' }).waitFor({ timeout: 5000 })
    t.equal((await app.inject(`/runs/${run.id}`)).json().state, 'running', 'lines show while the run runs')
    t.ok(
      follows.some((url) => new URL(url).searchParams.get('follow') === 'true'),
      'the log is followed (follow=true)',
    )
    const first = log.locator('li', { hasText: 'step 1 of 10' })
    t.match(await first.textContent(), /\d\d:\d\d:\d\d\.\d{3}/, 'each line has its time')
    t.same(
      (await first.locator('.log-fields').textContent())?.split(' ').sort(),
      ['rows=10', 'step=1', 'table=users'],
      'fields, compact',
    )
    t.equal(await first.getAttribute('class'), 'log-line level-info')

    // Later lines arrive without asking, while the run still runs.
    await log.locator('li.level-warn', { hasText: 'step 3 was slow' }).waitFor({ timeout: 5000 })
    await log.locator('li', { hasText: 'step 5 of 10' }).waitFor({ timeout: 5000 })
    t.equal((await app.inject(`/runs/${run.id}`)).json().state, 'running', 'appended as they arrive')

    const bar = dialog.getByRole('progressbar')
    await bar.waitFor()
    const now = Number(await bar.getAttribute('aria-valuenow'))
    t.ok(now > 0 && now < 100, `the bar is part way (${now}%)`)
    t.match(await dialog.locator('.progress-percent').textContent(), /^\d+%$/, 'with its percentage')
    t.match(await dialog.locator('.progress-detail').textContent(), /^\d+ of 10 steps$/)
    t.match(await bar.getAttribute('aria-valuetext'), /^\d+%, \d+ of 10 steps/)
    await dialog.locator('.progress-eta').waitFor()
    t.match(
      await dialog.locator('.progress-eta').textContent(),
      /^(about .+ left|finishing)$/,
      'and the time left',
    )

    // The end: the details say so, and every line is there once, in order.
    await dialog.locator('dd[data-field="State"] .state-succeeded').waitFor({ timeout: 20_000 })
    const lines = await logLines(app, run.id)
    t.ok(lines.length >= 13, `10 steps, 3 warnings and the runner's own lines (${lines.length})`)
    const seqs = await eventually(
      async () => {
        const shown = await shownSeqs(page)
        return shown.length === lines.length ? shown : undefined
      },
      5000,
      'every line',
    )
    t.same(
      seqs,
      lines.map((line) => line.seq),
      'every line, once, in order',
    )
    t.equal(await dialog.locator('.progress-eta').count(), 0, 'no time left once it has ended')
    await dialog.getByRole('button', { name: 'Close' }).click()
    t.equal(await row.locator('.progress').count(), 0, 'the table drops the bar once the run has ended')
  })

  t.test("a finished run's log is read page by page", async (t) => {
    const run = (
      await app.inject({
        method: 'POST',
        url: '/jobs/chatty/runs',
        payload: { args: { steps: 1200, ms: 0 } },
      })
    ).json()
    await eventually(
      async () => ((await app.inject(`/runs/${run.id}`)).json().state === 'succeeded' ? true : undefined),
      15_000,
      'the run to end',
    )
    const lines = await logLines(app, run.id)
    t.ok(lines.length > 1000, `more than a page (${lines.length} lines)`)
    const reads: URL[] = []
    const onRequest = (request: { url(): string }) => {
      const url = new URL(request.url())
      if (url.pathname === `/runs/${run.id}/logs`) reads.push(url)
    }
    page.on('request', onRequest)
    t.teardown(() => {
      page.off('request', onRequest)
    })
    await runRow(page, run.id).locator('.state-succeeded').waitFor({ timeout: 10_000 })
    await runRow(page, run.id)
      .getByRole('button', { name: `#${run.id}` })
      .click()
    await eventually(
      async () => ((await shownSeqs(page)).length === lines.length ? true : undefined),
      10_000,
      'every line shown',
    )
    t.same(
      await shownSeqs(page),
      lines.map((line) => line.seq),
    )
    t.same(
      reads.map((url) => url.searchParams.get('after')),
      ['0', '1000'],
      'two pages: the second after the last line of the first (nextCursor)',
    )
    t.notOk(
      reads.some((url) => url.searchParams.has('follow')),
      'a finished run is not followed',
    )
    t.ok(await page.locator('#detail-dialog .log-more').isHidden(), 'nothing more to read')
    await page.locator('#detail-dialog').getByRole('button', { name: 'Close' }).click()
  })

  t.test('each schedule shows a sparkline of its recent runs and its success rate', async (t) => {
    const ids = await recordRuns(app, 'backup-daily', 'database-backup', [
      ['succeeded', 4000],
      ['failed', 300],
      ['succeeded', 5000],
      ['cancelled', 2000],
      ['succeeded', 4500],
      ['succeeded', 6000],
      ['succeeded', 5200],
    ])
    const listed = page.waitForResponse((res) => new URL(res.url()).searchParams.get('recent') === '30')
    await page.locator('#refresh-schedules').click()
    t.equal((await listed).status(), 200, 'the dashboard asks for recent=30')
    const spark = scheduleRow(page, 'backup-daily').locator('svg.spark')
    await spark.locator('rect.bar').nth(6).waitFor()
    t.same(
      await spark.locator('rect.bar').evaluateAll((bars) => bars.map((bar) => bar.getAttribute('class'))),
      ['succeeded', 'failed', 'succeeded', 'cancelled', 'succeeded', 'succeeded', 'succeeded'].map(
        (state) => `bar outcome-${state}`,
      ),
      'a bar per finished run, oldest first, coloured by outcome',
    )
    const heights = await spark
      .locator('rect.bar')
      .evaluateAll((bars) => bars.map((bar) => Number(bar.getAttribute('height'))))
    t.equal(Math.max(...heights), heights[5], 'the longest run has the tallest bar')
    t.ok((heights[1] ?? 0) < (heights[0] ?? 0), 'a short run, a short bar')
    t.match(
      await spark.getAttribute('aria-label'),
      'Last 7 finished runs of backup-daily: 5 succeeded, 1 failed, 1 cancelled',
      'the chart says what it shows',
    )
    t.equal(await scheduleRow(page, 'backup-daily').locator('.rate').textContent(), '83%', '5 of 6')
    t.match(await scheduleRow(page, 'backup-hourly').locator('td.recent').textContent(), 'no finished runs')
    // A bar opens its run.
    await spark.locator('rect.bar').nth(1).click()
    await page
      .locator('#detail-dialog')
      .getByRole('heading', { name: `Run #${ids[1]}`, exact: true })
      .waitFor()
    await page.locator('#detail-dialog').getByRole('button', { name: 'Close' }).click()
  })

  t.test('the backup chart has a series per database and rings the anomalies', async (t) => {
    const sizes = [1.0, 1.1, 1.05, 1.2, 1.15, 1.3].map((m) => Math.round(m * 2 ** 20))
    await recordBackups(app, [
      ...sizes.map((bytes, i) => ({ database: 'shop', bytes, hours: 12 - i * 2 })),
      ...sizes.map((bytes, i) => ({ database: 'crm', bytes: Math.round(bytes / 3), hours: 12 - i * 2 })),
      {
        database: 'crm',
        bytes: 9_000,
        hours: 0.5,
        anomaly: { reason: 'smaller', bytes: 9_000, medianBytes: 400_000 },
      },
    ])
    await page.locator('#refresh-backups').click()
    const chart = page.locator('#backup-chart')
    await chart.locator('svg g.series').nth(1).waitFor()
    t.same(
      await chart
        .locator('svg g.series')
        .evaluateAll((series) => series.map((g) => g.getAttribute('data-series'))),
      ['crm', 'shop'],
      'one series per database',
    )
    t.equal(await chart.locator('g[data-series="shop"] circle.dot').count(), 6, 'a point per backup')
    t.equal(await chart.locator('g[data-series="crm"] circle.dot').count(), 7)
    t.equal(await chart.locator('circle.anomaly').count(), 1, 'the anomaly is ringed')
    t.match(
      await chart.locator('circle.anomaly title').textContent(),
      /crm .*far smaller than usual: 8\.8 KiB against a median of 390\.6 KiB/,
    )
    const svg = chart.locator('svg.chart')
    t.equal(await svg.getAttribute('role'), 'img')
    t.match(await chart.locator('svg.chart > title').textContent(), 'Backup size over time')
    t.match(
      await chart.locator('svg.chart > desc').textContent(),
      /crm: 7 files.*shop: 6 files.*1 size anomaly/,
    )
    const titles = await chart.locator('text.axis-title').allTextContents()
    t.same(titles, ['Size', 'Created'], 'the axes say what they measure')
    t.match(await chart.locator('g.tick text').first().textContent(), /^0 (B|KiB|MiB)$/, 'sizes from 0')
    t.same(
      await chart.locator('.legend li').allTextContents(),
      ['crm 7 files', 'shop 6 files', 'size anomaly (1)'],
      'a legend',
    )
    const anomalous = page.locator('#backups td.anomalous')
    t.equal(await anomalous.count(), 1, 'the table marks it too')
    t.match(await anomalous.textContent(), 'smaller than usual')
  })

  t.test('readable at 1280 px and at 390 px', async (t) => {
    // DASHBOARD_SCREENSHOT=docs/dashboard.png refreshes README's picture.
    const shot = process.env.DASHBOARD_SCREENSHOT
    if (shot) {
      await fs.mkdir(path.dirname(path.resolve(ROOT, shot)), { recursive: true })
      await page.screenshot({ path: path.resolve(ROOT, shot) })
    }
    await page.setViewportSize({ width: 390, height: 844 })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth)
    t.ok(overflow <= 390, `no sideways scrolling of the page (width ${overflow}); tables scroll in place`)
    await page.setViewportSize({ width: 1280, height: 900 })
  })

  t.same(errors, [], 'no console errors')
})

t.test('a viewer sees no buttons it may not use', async (t) => {
  if (!browserAvailable(t)) return
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const token = (
    await app.inject({ method: 'POST', url: '/tokens', payload: { name: 'wall', role: 'viewer' } })
  ).json().token
  await app.inject({ method: 'PATCH', url: '/jobs/cache-clear', payload: { concurrency: 3 } })
  // A finished run with a log, and a backup: what a viewer watches.
  const [runId] = await recordRuns(app, 'cache-clear', 'cache-clear', [['failed', 1200]])
  await app.sql`
    insert into run_logs (run_id, seq, at, level, message, fields) values
      (${runId ?? 0}, 1, now(), 'info', 'clearing the cache', null),
      (${runId ?? 0}, 2, now(), 'error', 'could not delete', ${app.sql.json({ table: 'analysis_cache' })})`
  await recordBackups(app, [
    { database: 'steward', bytes: 50_000, hours: 2 },
    { database: 'steward', bytes: 52_000, hours: 1 },
  ])
  const browser = await launchBrowser(t)
  const { page, errors } = await openPage(browser)
  await signIn(page, base, token)
  t.match(await page.locator('#who').textContent(), /wall \(viewer\)/)
  t.match(await jobRow(page, 'cache-clear').textContent(), /3default 1/, 'limits are shown, read-only')
  t.equal(await page.getByRole('button', { name: 'Run now' }).count(), 0)
  t.equal(await page.getByRole('button', { name: 'Limits' }).count(), 0)
  t.equal(await page.getByRole('button', { name: 'Edit' }).count(), 0)
  t.ok(await scheduleRow(page, 'cache-clear').getByRole('switch').isDisabled(), 'switches are read-only')
  t.ok(await page.getByLabel('Name contains').isEditable(), 'a viewer can search the schedules')
  await scheduleRow(page, 'cache-clear').locator('svg.spark rect.outcome-failed').waitFor()
  t.equal(
    await scheduleRow(page, 'cache-clear').locator('.rate').textContent(),
    '0%',
    'a viewer sees sparklines',
  )
  await page.locator('#backup-chart svg g[data-series="steward"]').waitFor()
  t.equal(await page.locator('#backup-chart circle.dot').count(), 2, 'and the backup chart')
  await runRow(page, runId ?? 0)
    .getByRole('button', { name: `#${runId}` })
    .click()
  const log = page.locator('#detail-dialog').getByRole('log')
  await log.locator('li.level-error').waitFor()
  const texts = await log.locator('li').allTextContents()
  t.equal(texts.length, 2)
  t.match(
    texts,
    [/info\s*clearing the cache/, /error\s*could not delete\s*table=analysis_cache/],
    'and reads run logs',
  )
  await page.locator('#detail-dialog').getByRole('button', { name: 'Close' }).click()
  await page.getByRole('button', { name: 'Forget' }).click()
  t.ok(await page.locator('#main').isHidden())
  t.equal(await page.evaluate(() => sessionStorage.getItem('steward-token')), null, 'the token is gone')
  t.same(errors, [])
})
