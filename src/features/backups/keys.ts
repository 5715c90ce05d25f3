// The age keys of the configuration: recipients (BACKUP_AGE_RECIPIENTS and/or _RECIPIENTS_FILE)
// that every backup file is encrypted to, and the identity file (BACKUP_AGE_IDENTITY_FILE) restore
// checks decrypt with. Checked at start-up, so a bad key stops the server with a message that names
// the variable instead of failing the first backup.
import { readFile } from 'node:fs/promises'
import type { Config } from '../../config.js'
import { parseRecipients, readIdentityFile } from './encryption.js'

/** The recipients to encrypt to; null when encryption is off. */
export async function loadRecipients(config: Config): Promise<string[] | null> {
  const lists: string[] = []
  if (config.backupAgeRecipients)
    lists.push(...parseRecipients(config.backupAgeRecipients, 'BACKUP_AGE_RECIPIENTS'))
  if (config.backupAgeRecipientsFile) {
    const text = await readFile(config.backupAgeRecipientsFile, 'utf8').catch((err: Error) => {
      throw new Error(
        `BACKUP_AGE_RECIPIENTS_FILE: cannot read ${config.backupAgeRecipientsFile}: ${err.message}`,
      )
    })
    lists.push(...parseRecipients(text, 'BACKUP_AGE_RECIPIENTS_FILE'))
  }
  return lists.length > 0 ? [...new Set(lists)] : null
}

/** The identities to decrypt with; null when BACKUP_AGE_IDENTITY_FILE is not set. */
export async function loadIdentities(config: Config): Promise<string[] | null> {
  if (!config.backupAgeIdentityFile) return null
  return await readIdentityFile(config.backupAgeIdentityFile).catch((err: Error) => {
    throw new Error(`BACKUP_AGE_IDENTITY_FILE: ${err.message}`)
  })
}
