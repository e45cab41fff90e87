import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import { hasStats } from './driver.js';
import { jobEnv, type JobSpec } from './job-spec.js';
import { ProcessDriver, type ProcessDriverOptions } from './process-driver.js';
import { runDriverContract } from './testing/contract.js';

runDriverContract({
  name: 'ProcessDriver',
  create: (dir) =>
    ProcessDriver.create({
      stateDir: join(dir, 'state'),
      sampleIntervalMs: 50,
      logPollMs: 50,
    }),
  restart: 'adopt',
  node: process.execPath,
});

describe('ProcessDriver', () => {
  let dir: string;
  let slug: string;
  const open: ProcessDriver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-process-driver-'));
    slug = join(dir, 'slug');
    await mkdir(slug);
  });

  afterEach(async () => {
    for (const d of open.splice(0).reverse()) {
      try {
        for (const job of await d.list()) await d.stop(job.id, { graceMs: 0 });
      } catch {
        // closed: handed on
      }
      await d.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function create(options: Partial<ProcessDriverOptions> = {}): Promise<ProcessDriver> {
    const d = await ProcessDriver.create({
      stateDir: join(dir, 'state'),
      logPollMs: 50,
      ...options,
    });
    open.push(d);
    return d;
  }

  function spec(id: string, command: string, extra: Partial<JobSpec> = {}): JobSpec {
    return {
      id,
      app: 'demo',
      release: 'v1',
      processType: 'web',
      index: 1,
      command,
      cwd: slug,
      env: jobEnv({ jobId: id, app: 'demo', release: 'v1', processType: 'web', index: 1 }),
      ...extra,
    };
  }

  async function line(d: ProcessDriver, id: string, text: string): Promise<void> {
    for await (const l of d.logs(id, { follow: true, signal: AbortSignal.timeout(10_000) })) {
      if (l.line.includes(text)) return;
    }
    throw new Error(`no line ${text}`);
  }

  it('kills a job over its memory limit after R14 warnings (R15), on its clock', async () => {
    const clock = new ManualClock(Date.now());
    const d = await create({
      clock,
      sampleIntervalMs: 1000,
      memoryGraceSamples: 2,
      memoryHardFactor: 100,
    });
    const node = process.execPath;
    await d.start(
      spec(
        'hog',
        `${node} -e "globalThis.k = Buffer.alloc(64 * 1024 * 1024, 1); console.log('full'); setInterval(() => {}, 1000)"`,
        {
          memoryMiB: 16,
        },
      ),
    );
    await line(d, 'hog', 'full');
    expect(hasStats(d)).toBe(true);
    expect((await d.stats('hog')).memoryBytes).toBeGreaterThan(16 * 1024 * 1024);
    const sampled = (): Promise<void> => new Promise((r) => d.once('sampled', () => r()));
    let s = sampled();
    await clock.advance(1000);
    await s;
    await line(d, 'hog', 'Error R14 (Memory quota exceeded)');
    expect((await d.inspect('hog')).state).toBe('running');
    s = sampled();
    await clock.advance(1000);
    await s;
    const status = await d.wait('hog');
    expect(status).toMatchObject({ reason: 'memory', signal: 'SIGKILL', code: null });
    expect(status.message).toMatch(/R15/);
    const system = [];
    for await (const l of d.logs('hog')) if (l.stream === 'system') system.push(l.line);
    expect(system).toHaveLength(3); // R14 once, R15, the exit
  });

  it('leaves a job under its limit alone', async () => {
    const clock = new ManualClock(Date.now());
    const d = await create({ clock, sampleIntervalMs: 1000, memoryGraceSamples: 1 });
    await d.start(spec('small', `echo up; exec sleep 1000`, { memoryMiB: 512 }));
    await line(d, 'small', 'up');
    for (let i = 0; i < 3; i++) {
      const s = new Promise<void>((r) => d.once('sampled', () => r()));
      await clock.advance(1000);
      await s;
    }
    expect((await d.inspect('small')).state).toBe('running');
  });

  it('refuses a second live driver on one state directory, and takes over after close', async () => {
    const first = await create();
    await expect(create()).rejects.toMatchObject({ code: 'FLOTILLA_HOST_STATE_DIR_IN_USE' });
    await first.close();
    await create();
  });

  it('reports a job record it cannot read back, and leaves it in place', async () => {
    const jobs = join(dir, 'state', 'jobs', 'broken');
    await mkdir(jobs, { recursive: true });
    await writeFile(join(jobs, 'job.json'), '{"id":"broken","pid":');
    const d = await create();
    expect(d.adoptionErrors.map((e) => e.code)).toEqual(['FLOTILLA_HOST_STATE_RECORD']);
    await expect(d.inspect('broken')).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_NOT_FOUND',
    });
    await expect(d.start(spec('broken', 'true'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXISTS',
    });
  });

  it('does not adopt nor signal a process that reused a job pid', async () => {
    const first = await create();
    await first.start(spec('reused', 'echo up; exec sleep 1000'));
    await line(first, 'reused', 'up');
    const record = join(dir, 'state', 'jobs', 'reused', 'job.json');
    const saved = await readFile(record, 'utf8');
    const real = JSON.parse(saved) as { pid: number };
    // Pretend the job's pid now names another process: this test's own (same pid, other start).
    await writeFile(record, JSON.stringify({ ...real, pid: process.pid }));
    await first.close();
    const second = await create();
    try {
      expect(await second.list()).toEqual([]);
      expect((await second.inspect('reused')).exit).toMatchObject({ reason: 'lost' });
    } finally {
      process.kill(-real.pid, 'SIGKILL');
    }
  });

  it('close lets a stop in flight finish and ends pending waits', async () => {
    const d = await create();
    await d.start(
      spec('slow', `trap 'sleep 0.2; exit 0' TERM; echo up; while :; do sleep 0.05; done`),
    );
    await d.start(spec('other', 'echo up; exec sleep 1000'));
    await line(d, 'slow', 'up');
    await line(d, 'other', 'up');
    const waiting = d.wait('other').catch((err: unknown) => err);
    const stopping = d.stop('slow', { graceMs: 10_000 });
    await d.close();
    expect(await stopping).toMatchObject({ reason: 'stopped', code: 0 });
    expect(await waiting).toMatchObject({ code: 'FLOTILLA_HOST_CLOSED' });
    const next = await create();
    expect((await next.list()).map((j) => j.id)).toEqual(['other']);
  });

  it('refuses bad options and signals with coded errors', async () => {
    await expect(create({ sampleIntervalMs: 0 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    const d = await create();
    await d.start(spec('sig', 'echo up; exec sleep 1000'));
    await expect(d.signal('sig', 'SIGNOPE' as NodeJS.Signals)).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(d.stop('sig', { graceMs: -1 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(
      d.start({ ...spec('env', 'true'), env: { 'BAD-NAME': 'x' } }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_HOST_INVALID_SPEC' });
  });
});
