// The backups feature: pg_dump sets with retention, their download, restore check and deletion, and
// the weekly restore drill.
import type { Feature } from '../../engine/feature.js'
import { backupVerify } from './backup-verify.js'
import { databaseBackup } from './database-backup.js'
import plugin from './plugin.js'
import { Backup } from './schemas.js'

export const backups: Feature = {
  plugin,
  jobs: [databaseBackup, backupVerify],
  schemas: [Backup],
  tag: { name: 'backups', description: 'Database backups: list, download, verify, delete' },
}
