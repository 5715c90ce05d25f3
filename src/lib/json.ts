// JSON values as stored in jsonb columns (job args and results, audit entries, snapshots).
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
