#!/usr/bin/env node
// The stack image of @flotilla/docker: how long createStackImage takes when its image exists
// (the target: well under a second), and when it must import it (into a throwaway repository,
// removed afterwards). Prints one JSON object.
//
//   node bench/stack-image.mjs [--runs 5] [--import]
//
// - existing_ms: p50/p99 of calls that find the image (stats files, one question to dockerd)
// - import_ms: with --import, one call that builds and imports the image from scratch (no ldd
//   cache), and its size
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createStackImage } from '@flotilla/docker';
import { acquireDocker } from '../scripts/docker.mjs';
import { percentile } from './lib/stats.mjs';

const args = process.argv.slice(2);
const i = args.indexOf('--runs');
const RUNS = i === -1 ? 5 : Number(args[i + 1]);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs takes a whole number from 1');
const IMPORT = args.includes('--import');

const engine = await acquireDocker();
const docker = new Docker({ socketPath: engine.socketPath });
const out = { bench: 'stack-image', runs: RUNS };
try {
  await createStackImage({ docker }); // the shared image, as the suites use it
  const times = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    const s = await createStackImage({ docker });
    times.push(performance.now() - t0);
    if (s.built) throw new Error('the image was imported again: its digest is not stable');
  }
  out.existing_ms = {
    p50: percentile(times, 50, 1),
    p99: percentile(times, 99, 1),
    n: times.length,
  };
  if (IMPORT) {
    const cacheDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-stack-'));
    const repository = `flotilla-bench/stack-${process.pid}`;
    try {
      const t0 = performance.now();
      const s = await createStackImage({ docker, repository, cacheDir, tagLatest: false });
      out.import_ms = Math.round(performance.now() - t0);
      out.image_mb = Math.round((await docker.getImage(s.image).inspect()).Size / 1e6);
      await docker.getImage(s.image).remove({ force: true });
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  }
} finally {
  await engine.release();
}
console.log(JSON.stringify(out));
