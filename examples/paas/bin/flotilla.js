#!/usr/bin/env node
// The `flotilla` command as npm links it: a committed file, so that `npx flotilla` works right
// after `npm ci` (npm links a workspace's bin only when its target exists at install time, and
// the compiled CLI appears later, with the first `tsc -b`). It runs the compiled CLI, and when
// there is none yet says how to build it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write(
    'flotilla: the CLI is not built yet. Run `npm run build` (or `npm start`, which builds first) at the repository root.\n',
  );
  process.exit(1);
}
await import(main);
