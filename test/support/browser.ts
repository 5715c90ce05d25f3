// Headless Chromium for end-to-end tests: Debian's chromium (installed by .ci/run when missing)
// driven by playwright-core, with the flags this closed network needs. A fresh profile per launch.

import { existsSync } from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Whether this machine has the browser. Outside CI, a machine without it skips the browser tests
 * with a note; CI installs it (.ci/run), so there they always run.
 */
export function browserAvailable(t: Test): boolean {
  if (existsSync(CHROMIUM) || process.env.CI) return true
  t.plan(0, `no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) to run this`)
  return false
}

export async function launchBrowser(t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  t.teardown(() => browser.close())
  return browser
}

/** A page that records console errors and uncaught exceptions, for a "no errors" check. */
export async function openPage(browser: Browser, viewport = { width: 1280, height: 900 }) {
  const page: Page = await browser.newPage({ viewport })
  const errors: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text())
  })
  page.on('pageerror', (err) => errors.push(String(err)))
  return { page, errors }
}
