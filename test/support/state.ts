// Where the test run's database lives, shared by the before/after scripts and test/helper.ts.
import { fileURLToPath } from 'node:url'

export const STATE_FILE = fileURLToPath(new URL('../../.tap/test-db.json', import.meta.url))
export const TEMPLATE_DB = 'steward_template'

export interface TestDbState {
  /** Maintenance-database URL of the server: test files create and drop their databases through it. */
  adminUrl: string
  template: string
  /** The db-daemon process, when this run started its own server. */
  pid?: number
  dataDir?: string
}
