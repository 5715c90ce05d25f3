// BENCHMARKS.md, as the full run writes it: how to run, the machine, the summary, one section per
// benchmark. Hand edits are lost on the next full run; change the benchmark's section text instead.
import type { machine, Result } from './harness.js'

export function renderReport(input: {
  machine: ReturnType<typeof machine> & { loadBefore: string }
  results: Result[]
  summary: string
  seconds: number
}): string {
  const m = input.machine
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ')
  return `# Benchmarks

Written by \`npm run bench\` (issue 7); do not edit by hand. Every figure below was measured by the run
described here, and each comparison is a ratio taken in that same run, since absolute times on a shared
machine drift.

\`\`\`sh
npm run bench               # everything (under 10 minutes), rewrites this file
npm run bench -- --quick    # small sizes, short windows (under a minute); CI runs it; writes nothing
npm run bench -- --only=run-history,trigger   # a subset; writes nothing
\`\`\`

The benchmarks use \`DATABASE_URL\` when it is set (a server whose user may create databases; each
benchmark creates and drops its own database), otherwise an embedded PostgreSQL under
\`BENCH_DATA_DIR\` (default \`$TMPDIR/steward-bench\`, kept so the next run skips \`pgbench -i\`).
\`BENCH_SCALE\` (default 35, about 530 MB) sets the pgbench scale of the backup benchmark and
\`BENCH_ROUNDS\` (default 5) its rounds. Servers are started with \`STEWARD_ADMIN_TOKEN\` and every
request sends it. The code is in \`bench/\`, one file per benchmark sharing \`bench/harness.ts\`.

## Run of ${date} UTC

Machine: ${m.cpu}, ${m.memory} RAM, ${m.os}, Node.js ${m.node}, PostgreSQL ${m.postgres}. Load
average ${m.loadBefore} before the run and ${m.load} after it (the machine is shared with other
engineers' test runs). The run took ${input.seconds} s.

${input.summary}

${input.results.map((r) => `## ${capitalise(r.name)}\n\n**Goal:** ${r.goal}. **Verdict:** ${r.verdict}.\n\n${r.section}\n`).join('\n')}`
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)
