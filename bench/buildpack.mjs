#!/usr/bin/env node
// Buildpack builds of a Node.js app with dependencies: the first build (empty cache), the
// second of the unchanged app (the cache effect), and the slug's size. Prints one JSON object.
//
//   node bench/buildpack.mjs [--deps N] [--files F]
//
// The dependencies are local package tarballs (`file:vendor/dep-N.tgz`, as `npm pack` makes
// them), so that npm unpacks and installs real packages without the network: the benchmark
// talks to nothing but the local disk.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from '@flotilla/buildpack';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};
const DEPS = arg('deps', 30);
const FILES = arg('files', 40);

const root = mkdtempSync(join(tmpdir(), 'flotilla-bench-buildpack-'));
try {
  const app = join(root, 'app');
  mkdirSync(join(app, 'vendor'), { recursive: true });
  const dependencies = {};
  for (let d = 0; d < DEPS; d++) {
    const pkg = join(root, 'packs', `dep-${d}`, 'package');
    mkdirSync(join(pkg, 'lib'), { recursive: true });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: `dep-${d}`, version: '1.0.0', main: 'lib/f0.js' }),
    );
    for (let f = 0; f < FILES; f++) {
      writeFileSync(
        join(pkg, 'lib', `f${f}.js`),
        `'use strict';\n// dep ${d} file ${f}\n${'module.exports.v = function v(x) { return x * 2 + 1; };\n'.repeat(40)}`,
      );
    }
    execFileSync('tar', [
      'czf',
      join(app, 'vendor', `dep-${d}.tgz`),
      '-C',
      join(root, 'packs', `dep-${d}`),
      'package',
    ]);
    dependencies[`dep-${d}`] = `file:vendor/dep-${d}.tgz`;
  }
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'bench-app',
      version: '1.0.0',
      private: true,
      dependencies,
      scripts: { start: 'node server.js' },
    }),
  );
  writeFileSync(
    join(app, 'server.js'),
    "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n",
  );

  const cacheDir = join(root, 'cache');
  const work = join(root, 'work');
  mkdirSync(work);
  const one = (label) =>
    build({ source: app, cacheDir, workDir: work, slugPath: join(root, `${label}.tgz`) });
  const first = await one('first');
  const second = await one('second');
  const restored = second.output.includes('Restoring node_modules from the cache');
  console.log(
    JSON.stringify(
      {
        bench: 'buildpack',
        app: { dependencies: DEPS, filesPerDependency: FILES },
        firstBuildMs: Math.round(first.durationMs),
        secondBuildMs: Math.round(second.durationMs),
        speedup: Math.round((first.durationMs / second.durationMs) * 100) / 100,
        secondRestoredFromCache: restored,
        slugBytes: second.sizeBytes,
        sameSlug: first.sha256 === second.sha256,
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
