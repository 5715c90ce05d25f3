// What a dump holds, read from its SQL script (a plain dump, or pg_restore's rendering of a custom
// one): the tables it creates and the rows it loads into each. And the same two things read back
// from a database, so a restore can be checked against the dump rather than against the live
// database, which has moved on since.
import type { Readable } from 'node:stream'
import type { Sql } from 'postgres'

/** "schema.table" → rows. */
export type TableCounts = Map<string, number>

// pg_dump's header before every object: "-- Name: t; Type: TABLE; Schema: s; Owner: o" and
// "-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: o" (Owner is "-" with --no-owner,
// and a Tablespace may follow).
const HEADER =
  /^-- (Data for )?Name: (.*); Type: (TABLE|TABLE DATA); Schema: (.*?)(?:; Owner: .*?)?(?:; Tablespace: .*)?$/

const NEWLINE = 0x0a
const END_OF_COPY = Buffer.from('\\.')

const key = (schema: string, table: string) => `${schema}.${table}`

/**
 * Reads a dump script once, in constant memory. Rows are counted as COPY data lines: COPY's text
 * format escapes newlines inside values, so one line is one row, up to the `\.` terminator. A COPY
 * counts only right after its "Data for" header, so a function body that happens to contain the
 * word COPY cannot throw the count off.
 */
export async function readDumpContents(script: Readable): Promise<TableCounts> {
  const tables: TableCounts = new Map()
  const loaded = new Map<string, number>()
  let dataFor: string | null = null
  let copying: string | null = null
  let copied = 0
  let carry: Buffer = Buffer.alloc(0)

  const line = (buf: Buffer, start: number, end: number) => {
    if (copying !== null) {
      if (end - start !== 2 || buf.compare(END_OF_COPY, 0, 2, start, end) !== 0) copied++
      else {
        loaded.set(copying, copied)
        copying = null
      }
      return
    }
    if (buf[start] === 0x2d /* - */) {
      const header = HEADER.exec(buf.toString('utf8', start, end))
      if (!header) return
      const name = key(header[4] as string, header[2] as string)
      if (header[1]) dataFor = name
      else if (header[3] === 'TABLE') tables.set(name, 0)
    } else if (dataFor !== null && buf.toString('latin1', start, start + 5) === 'COPY ') {
      copying = dataFor
      copied = 0
      dataFor = null
    }
  }

  for await (const chunk of script as AsyncIterable<Buffer>) {
    const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk
    let start = 0
    for (let nl = buf.indexOf(NEWLINE, start); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      line(buf, start, nl > start && buf[nl - 1] === 0x0d ? nl - 1 : nl)
      start = nl + 1
    }
    carry = buf.subarray(start)
  }
  if (carry.length > 0) line(carry, 0, carry.length)
  // Only tables the dump creates: data for an extension's configuration table is restored by the
  // extension's own script and is not a table of the dump.
  for (const [name, rows] of loaded) if (tables.has(name)) tables.set(name, rows)
  return tables
}

/** Every ordinary and partitioned table of a database with its own rows (ONLY: not its partitions'). */
export async function countTables(sql: Sql): Promise<TableCounts> {
  const rows = await sql<{ schema: string; name: string; rows: string }[]>`
    select n.nspname as schema, c.relname as name,
           (xpath('/row/c/text()',
                  query_to_xml(format('select count(*) as c from only %I.%I', n.nspname, c.relname),
                               false, true, '')))[1]::text as rows
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')`
  return new Map(rows.map((r) => [key(r.schema, r.name), Number(r.rows)]))
}

export interface Comparison {
  ok: boolean
  tables: number
  rows: number
  /** In the dump, not in the restored database. */
  missingTables: string[]
  /** In the restored database, not in the dump. */
  extraTables: string[]
  countMismatches: Array<{ table: string; dump: number; restored: number }>
}

const LIST_LIMIT = 50

export function compareContents(dump: TableCounts, restored: TableCounts): Comparison {
  const missingTables = [...dump.keys()].filter((t) => !restored.has(t)).sort()
  const extraTables = [...restored.keys()].filter((t) => !dump.has(t)).sort()
  const countMismatches = [...dump]
    .filter(([table, rows]) => restored.has(table) && restored.get(table) !== rows)
    .map(([table, rows]) => ({ table, dump: rows, restored: restored.get(table) as number }))
    .sort((a, b) => a.table.localeCompare(b.table))
  return {
    ok: missingTables.length === 0 && extraTables.length === 0 && countMismatches.length === 0,
    tables: dump.size,
    rows: [...dump.values()].reduce((a, b) => a + b, 0),
    missingTables: missingTables.slice(0, LIST_LIMIT),
    extraTables: extraTables.slice(0, LIST_LIMIT),
    countMismatches: countMismatches.slice(0, LIST_LIMIT),
  }
}
