#!/usr/bin/env node
// npm test: build every package, run every test suite, end with one summary line.
//
//   npm test                          all suites
//   npm test -- packages/procfile     one package (any vitest filter works)
//
// Suites that need a real engine (etcd, dockerd) get it from scripts/services.mjs; when one
// cannot be had, the run fails and says what is missing. Nothing is skipped silently.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();

/** The command running now, which a signal to this process is passed on to. */
let current;

function run(cmd, args, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env });
    current = child;
    child.on('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

const bin = (name) => join(root, 'node_modules', '.bin', name);

console.log('> tsc -b');
if ((await run(bin('tsc'), ['-b'])) !== 0) {
  console.log('flotilla test: build failed, no test ran');
  process.exit(1);
}

const { startServices } = await import('./services.mjs');
let services;
try {
  services = await startServices({ root });
} catch (err) {
  console.error(`flotilla test: ${err.message}`);
  process.exit(1);
}

// Ctrl-C or a CI timeout: stop vitest (a signal sent to this process alone, as npm passes one
// on, would leave it running against stopped engines) and the engines (our own dockerd runs
// detached and would outlive this process, an etcd would leave its data directory), then end as
// the signal would.
for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
]) {
  process.once(signal, () => {
    console.error(`flotilla test: ${signal}, stopping the engines`);
    current?.kill(signal);
    void services.stop().finally(() => process.exit(128 + number));
  });
}

const resultsDir = join(root, '.test-results');
const resultsFile = join(resultsDir, 'vitest.json');
mkdirSync(resultsDir, { recursive: true });
rmSync(resultsFile, { force: true });

const code = await run(
  bin('vitest'),
  [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${resultsFile}`,
    ...process.argv.slice(2),
  ],
  { ...process.env, ...services.env },
);
await services.stop();

const seconds = ((performance.now() - started) / 1000).toFixed(1);
let summary;
try {
  const r = JSON.parse(readFileSync(resultsFile, 'utf8'));
  const skipped = r.numPendingTests + r.numTodoTests;
  summary =
    `flotilla test: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped ` +
    `(${r.numTotalTestSuites} suites in ${r.testResults.length} files) in ${seconds}s`;
} catch {
  summary = `flotilla test: vitest wrote no results (exit code ${code}) after ${seconds}s`;
}
console.log(`\n${summary}`);
process.exit(code === 0 ? 0 : 1);
