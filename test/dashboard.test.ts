// The status dashboard in headless Chromium, against a real server on a real port: sign in with a
// token, run a job and watch it finish without reloading, see the API's message for a bad cron,
// disable a schedule, cancel a running run; roles decide the buttons; no console errors.
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
  const browser = await launchBrowser(t)
  const { page, errors } = await openPage(browser)
  await signIn(page, base, token)
  t.match(await page.locator('#who').textContent(), /wall \(viewer\)/)
  t.equal(await page.getByRole('button', { name: 'Run now' }).count(), 0)
  t.equal(await page.getByRole('button', { name: 'Edit' }).count(), 0)
  t.ok(await scheduleRow(page, 'cache-clear').getByRole('switch').isDisabled(), 'switches are read-only')
  await page.getByRole('button', { name: 'Forget' }).click()
  t.ok(await page.locator('#main').isHidden())
  t.equal(await page.evaluate(() => sessionStorage.getItem('steward-token')), null, 'the token is gone')
  t.same(errors, [])
})
