// Where the test run's database lives, shared by the before/after scripts and test/helper.ts.
import { fileURLToPath } from 'node:url'

// Keyed by the tap runner's pid, the parent of the before/after scripts and of every test file, so
// two test runs in one checkout (an editor's and a terminal's) never share a database.
export const STATE_FILE = fileURLToPath(new URL(`../../.tap/test-db-${process.ppid}.json`, import.meta.url))
export const TEMPLATE_DB = 'steward_template'

export interface TestDbState {
  /** Maintenance-database URL of the server: test files create and drop their databases through it. */
  adminUrl: string
  template: string
  /** The db-daemon process, when this run started its own server. */
  pid?: number
  dataDir?: string
}
