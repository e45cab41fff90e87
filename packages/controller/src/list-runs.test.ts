// The one-offs a controller runs: listRuns lists its runs and release phases while they run,
// and close() stops them (waiting until they are gone). Real jobs: a DriverOneOffRunner on a
// ProcessDriver of its own, whose list() says what still runs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { ArtifactCache, ProcessDriver } from '@flotilla/host';
import { Controller } from './controller.js';
import { DriverOneOffRunner } from './driver-one-off-runner.js';
import type { OneOffRunner, RunExit, RunOutputLine } from './one-off.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
let driver: ProcessDriver | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  // A job a failed test left (one that ignores SIGTERM too) is not left running.
  for (const j of (await driver?.list()) ?? [])
    if (j.state === 'running') await driver?.stop(j.id, { graceMs: 100 });
  await driver?.close();
  driver = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/**
 * The driver's message for a job a stop ended: by the signal, or by the SIGKILL after the grace
 * when the job outlived it.
 */
const STOPPED =
  /was stopped( with SIGTERM|: still running \d+ ms after SIGTERM, killed by SIGKILL)/;

/** A controller whose one-offs run on a real ProcessDriver (SIGKILL 300 ms after SIGTERM). */
async function setUp(wrap: (r: OneOffRunner) => OneOffRunner = (r) => r): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-runs-'));
  dirs.push(dir);
  driver = await ProcessDriver.create({ stateDir: join(dir, 'state'), logPollMs: 50 });
  const runner = new DriverOneOffRunner({
    driver,
    artifacts: new ArtifactCache({ dir: join(dir, 'cache') }),
    workDir: join(dir, 'run'),
    stopGraceMs: 300,
  });
  h = await harness({ controller: { runner: wrap(runner) } });
  return h;
}

/** An app with a release to run with (its one process type, worker, is scaled to 0). */
async function appWithBuild(hh: Harness, name = 'demo'): Promise<void> {
  await hh.controller.createApp({ name });
  const src = await hh.source({ Procfile: 'worker: sleep 1\n' });
  const b = await hh.controller.createBuild(name, { type: 'git', dir: src, sha: sha(1) });
  expect((await hh.controller.waitForBuild(name, b.id)).status).toBe('succeeded');
}

async function running(): Promise<string[]> {
  return (await (driver as ProcessDriver).list())
    .filter((j) => j.state === 'running')
    .map((j) => j.id);
}

describe('Controller.listRuns', () => {
  it('lists two runs at once with distinct ids, what they run and since when; each leaves the list once it ended', async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    expect(await hh.controller.listRuns('demo')).toEqual([]);
    const before = Date.now();
    const a = await hh.controller.run('demo', { command: 'sleep 60' });
    const b = await hh.controller.run('demo', { command: 'sleep 61', size: 'large' });
    const runs = await hh.controller.listRuns('demo');
    expect(runs.map((r) => [r.id, r.type, r.command, r.release, r.size])).toEqual([
      [a.id, 'run', 'sleep 60', 'v1', 'standard'],
      [b.id, 'run', 'sleep 61', 'v1', 'large'],
    ]);
    expect(a.id).not.toBe(b.id);
    for (const r of runs) {
      expect(r.startedAt).toBeGreaterThanOrEqual(before);
      expect(r.startedAt).toBeLessThanOrEqual(Date.now());
    }
    await a.stop();
    await a.exit;
    expect((await hh.controller.listRuns('demo')).map((r) => r.id)).toEqual([b.id]);
    await b.stop();
    await b.exit;
    expect(await hh.controller.listRuns('demo')).toEqual([]);
  });

  it('a run that ends at once is not listed once its exit resolved', async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    const run = await hh.controller.run('demo', { command: 'true' });
    expect((await run.exit).code).toBe(0);
    expect(await hh.controller.listRuns('demo')).toEqual([]);
  });

  it("lists only the app's own runs; an unknown app and a name with / are refused as by the other reads", async () => {
    const hh = await setUp();
    await appWithBuild(hh, 'demo');
    await hh.controller.createApp({ name: 'other' });
    const run = await hh.controller.run('demo', { command: 'sleep 60' });
    expect(await hh.controller.listRuns('other')).toEqual([]);
    const unknown = await hh.controller.listRuns('nope').catch((e: unknown) => e);
    expect(isFlotillaError(unknown, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')).toBe(true);
    const slash = await hh.controller.listRuns('demo/x').catch((e: unknown) => e);
    expect(isFlotillaError(slash, 'FLOTILLA_CONTROLLER_INVALID_INPUT')).toBe(true);
    expect((await hh.controller.listRuns('demo')).map((r) => r.id)).toEqual([run.id]);
  });

  it('stopRun stops one run of the app and waits until it ended; another app, an unknown id or a bad one is refused', async () => {
    const hh = await setUp();
    await appWithBuild(hh, 'demo');
    await hh.controller.createApp({ name: 'other' });
    const a = await hh.controller.run('demo', { command: 'sleep 60' });
    const b = await hh.controller.run('demo', { command: 'sleep 60' });
    expect(await hh.controller.stopRun('other', a.id)).toBe(false);
    expect(await hh.controller.stopRun('demo', 'demo.run.000000000000')).toBe(false);
    const bad = await hh.controller.stopRun('demo', '').catch((e: unknown) => e);
    expect(isFlotillaError(bad, 'FLOTILLA_CONTROLLER_INVALID_INPUT')).toBe(true);
    const unknown = await hh.controller.stopRun('nope', a.id).catch((e: unknown) => e);
    expect(isFlotillaError(unknown, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')).toBe(true);
    expect(await hh.controller.stopRun('demo', a.id)).toBe(true);
    expect(await running()).toEqual([b.id]);
    // Stopped right after it started: by SIGTERM, or by the SIGKILL after the grace when the
    // SIGTERM came while bash was between fork and exec of `sleep` (the child then loses it).
    expect((await a.exit).message).toMatch(STOPPED);
    expect((await hh.controller.listRuns('demo')).map((r) => r.id)).toEqual([b.id]);
    expect(await hh.controller.stopRun('demo', a.id)).toBe(false);
  });

  it('a run whose process is killed from outside leaves the list once its exit resolved', async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    const run = await hh.controller.run('demo', { command: 'sleep 60' });
    const pid = (await (driver as ProcessDriver).inspect(run.id)).pid as number;
    process.kill(pid, 'SIGKILL');
    expect((await run.exit).code).not.toBe(0);
    expect(await hh.controller.listRuns('demo')).toEqual([]);
  });

  it("a second controller over the same store lists none of the first's runs, and its close stops none", async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    const run = await hh.controller.run('demo', { command: 'sleep 60' });
    const second = new Controller({
      store: hh.store,
      artifacts: hh.artifacts,
      workDir: join(hh.dir, 'work-2'),
      leaseTtlMs: 2000,
    });
    try {
      await second.start();
      expect(await second.listRuns('demo')).toEqual([]);
      expect(await second.stopRun('demo', run.id)).toBe(false);
    } finally {
      await second.close();
    }
    expect(await running()).toEqual([run.id]);
    expect((await hh.controller.listRuns('demo')).map((r) => r.id)).toEqual([run.id]);
  });

  it('lists the release phase while its command runs; destroying the app stops it', async () => {
    let started!: () => void;
    const up = new Promise<void>((resolve) => (started = resolve));
    const hh = await setUp((r) => ({
      async start(spec, o) {
        const handle = await r.start(spec, o);
        if (spec.type === 'release') started();
        return handle;
      },
    }));
    await hh.controller.createApp({ name: 'demo' });
    const src = await hh.source({ Procfile: 'release: sleep 60\nworker: sleep 1\n' });
    const b = await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(2) });
    await up;
    await vi.waitFor(async () => expect(await hh.controller.listRuns('demo')).toHaveLength(1), {
      timeout: 10_000,
    });
    const [phase] = await hh.controller.listRuns('demo');
    expect(phase).toMatchObject({ type: 'release', command: 'sleep 60', release: 'v1' });
    expect(await running()).toEqual([phase?.id]);
    await hh.controller.destroyApp('demo');
    expect(await running()).toEqual([]);
    await hh.controller.waitForBuild('demo', b.id).catch(() => undefined);
  });
});

describe('Controller.close and one-offs', () => {
  it('stops a long run (SIGKILL after the grace for one that ignores SIGTERM) and waits until it is gone', async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    const plain = await hh.controller.run('demo', { command: 'sleep 60' });
    const stubborn = await hh.controller.run('demo', {
      command: `trap '' TERM; echo trapped; while true; do sleep 1; done`,
    });
    // Its trap is set before it is stopped.
    for await (const l of stubborn.output) if (l.line === 'trapped') break;
    expect(await running()).toHaveLength(2);
    const exits: RunExit[] = [];
    void plain.exit.then((e) => exits.push(e));
    void stubborn.exit.then((e) => exits.push(e));
    await hh.controller.close();
    // close() resolved only once both had ended and were removed. The stubborn one outlived
    // the grace; the plain one was stopped (by SIGTERM, or by the SIGKILL after the grace when
    // the SIGTERM came while its bash was between fork and exec of `sleep`: it may be newer
    // than the trap the other run printed).
    expect(exits).toHaveLength(2);
    expect((await stubborn.exit).message).toMatch(
      /still running \d+ ms after SIGTERM, killed by SIGKILL/,
    );
    expect((await stubborn.exit).signal).toBe('SIGKILL');
    expect((await plain.exit).message).toMatch(STOPPED);
    expect(await (driver as ProcessDriver).list()).toEqual([]);
    await hh.controller.close(); // idempotent
  });

  it('stops a run that streams output while it is not read, and ends its output', async () => {
    const hh = await setUp();
    await appWithBuild(hh);
    // A steady stream, not `yes`: what a stopped run wrote is all handed to its reader (up to
    // the driver's 16 MiB), which would measure that hand-over, not close().
    const run = await hh.controller.run('demo', {
      command: 'while true; do echo flotilla; sleep 0.002; done',
    });
    const it = run.output[Symbol.asyncIterator]();
    const first = await it.next();
    expect((first.value as RunOutputLine).line).toBe('flotilla');
    await hh.controller.close();
    // Ended by the stop: how bash then exits (the signal, 143, or 0 once its child died of
    // it first) varies from run to run, and a slow one gets the SIGKILL after the grace; the
    // driver's message says what ended it.
    const exit = await run.exit;
    expect(exit.message).toMatch(STOPPED);
    // Its output ends (what was left of it is held for the reader), the reader is not left hanging.
    for (let r = await it.next(); r.done !== true; r = await it.next());
    expect(await running()).toEqual([]);
  });

  it('stops a release phase running, and close() resolves', async () => {
    const hh = await setUp();
    await hh.controller.createApp({ name: 'demo' });
    const src = await hh.source({ Procfile: 'release: sleep 60\nworker: sleep 1\n' });
    await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(3) });
    await vi.waitFor(async () => expect(await hh.controller.listRuns('demo')).toHaveLength(1), {
      timeout: 10_000,
    });
    expect(await running()).toHaveLength(1);
    await hh.controller.close();
    expect(await (driver as ProcessDriver).list()).toEqual([]);
  });

  it('a run whose start is in flight when close() begins is stopped too, and close() waits for it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inStart = new Promise<void>((resolve) => (entered = resolve));
    const hh = await setUp((r) => ({
      async start(spec, o) {
        entered();
        await gate;
        return r.start(spec, o);
      },
    }));
    await appWithBuild(hh);
    const pending = hh.controller.run('demo', { command: 'sleep 60' });
    await inStart;
    let closed = false;
    const closing = hh.controller.close().then(() => (closed = true));
    release();
    const run = await pending;
    await closing;
    expect(closed).toBe(true);
    // Stopped by close(): by SIGTERM, or by the SIGKILL after the grace when the SIGTERM came
    // while bash was between fork and exec of `sleep` (the child then loses it; CI saw that).
    expect((await run.exit).message).toMatch(STOPPED);
    expect(await (driver as ProcessDriver).list()).toEqual([]);
    const after = await hh.controller.run('demo', { command: 'true' }).catch((e: unknown) => e);
    expect(isFlotillaError(after, 'FLOTILLA_CONTROLLER_CLOSED')).toBe(true);
  });
});
