// Local retention: which sets stay in BACKUP_DIR. The grandfather-father-son tiers of gfs.ts with
// BACKUP_KEEP_HOURLY / _DAILY / _WEEKLY / _MONTHLY, plus two rules that protect restorability: the
// newest set of each kind and the newest set that passed its restore check are always kept, and a
// set still waiting for its off-site upload is never removed (an object-store outage loses no set).
// A removed set whose off-site copy is uploaded keeps its rows: it is still listed and served.
// With several hosts the tiers count every host's sets (the keep counts are cluster-wide), but each
// host removes only the sets in its own BACKUP_DIR: another host's files are that host's to remove.
import type { Config } from '../../config.js'
import { type BackupKind, isLocalHere } from './files.js'
import { retained } from './gfs.js'
import type { BackupStore, SetSummary } from './store.js'

/** Removes the local copy of the sets retention no longer keeps; returns their directories. */
export async function applyLocalRetention(store: BackupStore, config: Config): Promise<string[]> {
  const local = (await store.sets()).filter((set) => set.local)
  const keep = retained(
    local.map((set) => ({ id: set.setDir, kind: set.kind, createdAt: set.createdAt })),
    {
      hourly: config.backupKeepHourly,
      daily: config.backupKeepDaily,
      weekly: config.backupKeepWeekly,
      monthly: config.backupKeepMonthly,
    },
  )
  for (const kind of ['hourly', 'daily'] as const) {
    const ofKind = local.filter((set) => set.kind === kind)
    for (const set of [ofKind[0], ofKind.find((s) => s.verified)]) if (set) keep.add(set.setDir)
  }
  const retire = local.filter(
    (set) => !keep.has(set.setDir) && !set.awaitingUpload && isLocalHere(set, config.backupHost),
  )
  for (const [kind, sets] of byKind(retire)) await store.dropLocal(kind, { setDirs: sets })
  return retire.map((set) => set.setDir)
}

export function byKind(sets: SetSummary[]): Map<BackupKind, string[]> {
  const groups = new Map<BackupKind, string[]>()
  for (const set of sets) groups.set(set.kind, [...(groups.get(set.kind) ?? []), set.setDir])
  return groups
}
