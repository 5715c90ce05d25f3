// Size anomalies: a file far smaller than usual (an emptied table, the wrong database) or far larger
// is flagged on its backup, told in the run's result and alerted (backup_anomaly, once per backup).
// The backup stays: the dump is real, and the operator decides what it means.
import type { Anomaly, StoredBackup } from './schemas.js'
import type { BackupStore } from './store.js'

/** Previous files compared with: the newest up to 7, and no verdict with fewer than 3. */
const HISTORY = 7
const MIN_HISTORY = 3
const SMALLER = 0.5
const LARGER = 3

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** The anomaly of a file of `bytes` against the sizes of its predecessors, if it is one. */
export function anomalyOf(bytes: number, previous: number[]): Anomaly | null {
  if (previous.length < MIN_HISTORY) return null
  const medianBytes = Math.round(median(previous))
  if (bytes < medianBytes * SMALLER) return { reason: 'smaller', bytes, medianBytes }
  if (bytes > medianBytes * LARGER) return { reason: 'larger', bytes, medianBytes }
  return null
}

/** Checks each file of a new set and records what it finds; returns the flagged files. */
export async function flagAnomalies(store: BackupStore, set: StoredBackup[]) {
  const flagged: Array<{ id: number; database: string; file: string } & Anomaly> = []
  for (const backup of set) {
    const anomaly = anomalyOf(backup.bytes, await store.previousSizes(backup, HISTORY))
    if (!anomaly) continue
    await store.setAnomaly(backup.id, anomaly)
    flagged.push({ id: backup.id, database: backup.database, file: backup.file, ...anomaly })
  }
  return flagged
}
