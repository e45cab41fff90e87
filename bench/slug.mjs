#!/usr/bin/env node
// Slug pack and extract throughput against `tar czf` and `tar xzf` on the same tree, in the
// same run. Prints one JSON object; the target is a ratio >= 0.8 of tar's throughput.
// Each run times slug then tar back to back; ratios and MB/s are medians over the runs.
//
//   node bench/slug.mjs [--files N] [--mb M] [--runs R]
//
// The tree looks like a built Node.js app: many small text files (sources, package.json,
// READMEs) in nested directories, plus a few larger ones; text compresses as code does.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractSlug, packSlug } from '@flotilla/slug';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};
const FILES = arg('files', 3000);
const MB = arg('mb', 40);
const RUNS = arg('runs', 3);

const words =
  'const let function return module exports require if else for while import from export default class new this await async true false null undefined'.split(
    ' ',
  );
function text(bytes, seed) {
  let s = '';
  let x = seed;
  while (s.length < bytes) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += words[x % words.length] + ((x >> 8) % 7 === 0 ? ';\n' : ' ');
    if ((x >> 4) % 13 === 0) s += `v${x % 100000} = ${x % 977};\n`;
  }
  return s.slice(0, bytes);
}

const root = mkdtempSync(join(tmpdir(), 'flotilla-bench-slug-'));
try {
  const tree = join(root, 'app');
  const bigCount = 8;
  const smallBytes = Math.max(1, Math.floor((MB * 1024 * 1024 * 0.5) / FILES));
  const bigBytes = Math.floor((MB * 1024 * 1024 * 0.5) / bigCount);
  for (let i = 0; i < FILES; i++) {
    const dir = join(tree, 'node_modules', `pkg${i % 150}`, `lib${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.js`), text(smallBytes, i + 1));
  }
  mkdirSync(join(tree, 'dist'), { recursive: true });
  for (let i = 0; i < bigCount; i++)
    writeFileSync(join(tree, 'dist', `bundle${i}.js`), text(bigBytes, 1e6 + i));
  const treeBytes = FILES * smallBytes + bigCount * bigBytes;

  const time = async (fn) => {
    const t0 = performance.now();
    await fn();
    return (performance.now() - t0) / 1000;
  };
  const packs = { slug: [], tar: [] };
  const extracts = { slug: [], tar: [] };
  let slugSize = 0;
  let tarSize = 0;
  for (let r = 0; r < RUNS; r++) {
    const slugFile = join(root, `slug${r}.tgz`);
    const tarFile = join(root, `tar${r}.tgz`);
    packs.slug.push(await time(async () => (slugSize = (await packSlug(tree, slugFile)).size)));
    packs.tar.push(await time(() => execFileSync('tar', ['czf', tarFile, '-C', tree, '.'])));
    tarSize = Number(execFileSync('stat', ['-c', '%s', tarFile], { encoding: 'utf8' }));
    const slugOut = join(root, `slug-out${r}`);
    const tarOut = join(root, `tar-out${r}`);
    extracts.slug.push(await time(() => extractSlug(slugFile, slugOut)));
    mkdirSync(tarOut);
    extracts.tar.push(await time(() => execFileSync('tar', ['xzf', tarFile, '-C', tarOut])));
    rmSync(slugOut, { recursive: true });
    rmSync(tarOut, { recursive: true });
    rmSync(slugFile);
    rmSync(tarFile);
  }
  // Load on a shared machine comes and goes: each run times slug and tar back to back, and
  // the ratio reported is the median of the runs' ratios; MB/s are medians too.
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mbps = (s) => Math.round((treeBytes / 1024 / 1024 / s) * 10) / 10;
  const round = (x) => Math.round(x * 100) / 100;
  const ratios = (a) => a.tar.map((t, i) => t / a.slug[i]);
  const packRatio = round(median(ratios(packs)));
  const extractRatio = round(median(ratios(extracts)));
  console.log(
    JSON.stringify(
      {
        bench: 'slug',
        tree: { files: FILES + bigCount, bytes: treeBytes },
        runs: RUNS,
        pack: {
          slugMBps: mbps(median(packs.slug)),
          tarMBps: mbps(median(packs.tar)),
          ratio: packRatio,
        },
        extract: {
          slugMBps: mbps(median(extracts.slug)),
          tarMBps: mbps(median(extracts.tar)),
          ratio: extractRatio,
        },
        sizes: { slugBytes: slugSize, tarBytes: tarSize },
        target: 0.8,
        meetsTarget: packRatio >= 0.8 && extractRatio >= 0.8,
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
