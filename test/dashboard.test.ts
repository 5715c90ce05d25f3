// The status dashboard in headless Chromium, against a real server on a real port: sign in with a
// token, run a job and watch it finish without reloading, see the API's message for a bad cron,
// disable a schedule, cancel a running run; chains (on schedules, from Run now, stopped by a
// failure), runs waiting for a slot, job limits; roles decide the buttons; no console errors.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import t from 'tap'
import { testJobs } from './fixtures/jobs.js'
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

t.test('the dashboard, end to end', async (t) => {
  if (!browserAvailable(t)) return
  const app = await buildTestApp(t, { jobs: testJobs, env: { SCHEDULER_ENABLED: 'false' } })
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
  await page.getByRole('button', { name: 'Forget' }).click()
  t.ok(await page.locator('#main').isHidden())
  t.equal(await page.evaluate(() => sessionStorage.getItem('steward-token')), null, 'the token is gone')
  t.same(errors, [])
})
