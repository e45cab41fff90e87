#!/usr/bin/env node
// npm run bench: build, then run every bench/*.mjs in turn; each prints one JSON object.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv[2];
if (spawnSync(join(root, 'node_modules/.bin/tsc'), ['-b'], { stdio: 'inherit' }).status !== 0) {
  process.exit(1);
}
const benches = readdirSync(join(root, 'bench')).filter(
  (f) => f.endsWith('.mjs') && (!only || f.includes(only)),
);
let failed = 0;
for (const file of benches) {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--max-old-space-size=12000', join(root, 'bench', file)],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) failed++;
}
if (benches.length === 0) console.error('no benchmark matched');
process.exit(failed === 0 ? 0 : 1);
