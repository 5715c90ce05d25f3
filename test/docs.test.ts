// Swagger UI in a real browser: it renders under the Content-Security-Policy, "Authorize" takes a
// bearer token, and "Try it out" then calls the API with it.
import t from 'tap'
import { buildTestApp, TEST_ADMIN_TOKEN } from './helper.js'
import { browserAvailable, launchBrowser, openPage } from './support/browser.js'

t.test('Swagger UI: renders, authorizes with a bearer token, and tries an endpoint', async (t) => {
  if (!browserAvailable(t)) return
  const app = await buildTestApp(t, { env: { SCHEDULER_ENABLED: 'false' } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launchBrowser(t)
  const { page, errors } = await openPage(browser)

  await page.goto(`${base}/docs`)
  await page.getByRole('button', { name: 'Authorize' }).first().click()
  await page.locator('.auth-container input').fill(TEST_ADMIN_TOKEN)
  await page.locator('.auth-btn-wrapper button.authorize').click()
  await page.getByRole('button', { name: 'Close' }).click()

  const operation = page.locator('#operations-access-getCurrentToken')
  await operation.locator('.opblock-summary').click()
  await operation.getByRole('button', { name: 'Try it out' }).click()
  await operation.getByRole('button', { name: 'Execute' }).click()
  const body = operation.locator('.responses-table .response .microlight').first()
  await body.waitFor()
  t.match(await body.textContent(), /"role": "admin"/, 'the call carried the token')
  t.same(errors, [], 'no console errors (the CSP lets Swagger UI work)')
})
