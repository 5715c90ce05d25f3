#!/usr/bin/env node
// The `steward` command's launcher (package.json bin): registers tsx, the TypeScript loader `npm start`
// uses (`node --import tsx`), then runs src/cli.ts in this same process, so signals and the exit
// status are the command's own. No build step: the sources are what runs.
import 'tsx'

await import('../src/cli.ts')
