// What the agent asks its driver to run (image jobs, resources) and how it stops jobs (the
// drain hook), seen through a FakeDriver that records every spec.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState, type Artifact, type JobRecord } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { MemoryStore } from '@flotilla/store';
import { ArtifactCache } from './artifact-cache.js';
import type { DrainWait } from './drain-wait.js';
import { HostAgent, type HostAgentOptions } from './host-agent.js';
import { FakeDriver } from './testing/fake-driver.js';
import { claimPortRange } from '../../../test/support/port-slots.js';

describe('HostAgent: what it asks the driver to run, and how it drains (FakeDriver)', () => {
  let dir: string;
  let store: MemoryStore;
  let cluster: ClusterState;
  let discovery: Discovery;
  const agents: HostAgent[] = [];
  const drivers: FakeDriver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-agent-jobs-'));
    store = new MemoryStore();
    cluster = new ClusterState({ store });
    discovery = new Discovery({ store });
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close({ stopJobs: true }).catch(() => undefined);
    for (const d of drivers.splice(0)) await d.close();
    await discovery.close();
    await cluster.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function agent(
    driver: FakeDriver,
    extra: Partial<HostAgentOptions> = {},
  ): Promise<HostAgent> {
    drivers.push(driver);
    const a = new HostAgent({
      id: 'h1',
      store,
      driver,
      address: '127.0.0.1:7000',
      capacity: { cpu: 4000, memory: 8192 },
      ports: await claimPortRange(10),
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'run'),
      discovery,
      drainMs: 50,
      ...extra,
    });
    agents.push(a);
    return a;
  }

  async function release(artifact: Artifact): Promise<void> {
    await cluster.putRelease({
      app: 'demo',
      release: 'v1',
      artifact,
      config: { GREETING: 'hi' },
      processes: { web: { command: 'node server.js', stopGraceMs: 5000 } },
      createdAt: Date.now(),
    });
  }

  async function assign(id: string, desired: 'run' | 'stop' = 'run'): Promise<void> {
    const record: JobRecord = {
      id,
      app: 'demo',
      release: 'v1',
      type: 'web',
      hostId: 'h1',
      index: 2,
      resources: { cpu: 250, memory: 256 },
      desired,
      createdAt: Date.now(),
    };
    await store.put(cluster.keys.job('h1', id), JSON.stringify(record));
  }

  const once = <T extends unknown[]>(a: HostAgent, event: 'ready' | 'ended', jobId: string) =>
    new Promise<T>((resolve) => {
      const on = (...args: unknown[]): void => {
        if (args[0] !== jobId) return;
        a.off(event, on);
        resolve(args as T);
      };
      a.on(event, on);
    });

  const image: Artifact = { type: 'image', image: 'flotilla/demo:v1' };

  it('starts an image job with spec.image, an empty scratch cwd and the job resources, fetching nothing', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    // No artifact may be fetched: a fetch that is called fails the test.
    const fetched: string[] = [];
    const a = await agent(driver, {
      artifacts: new ArtifactCache({
        dir: join(dir, 'artifacts'),
        fetch: async (url) => {
          fetched.push(String(url));
          throw new Error('no fetch for an image');
        },
      }),
    });
    await a.start();
    const ready = once(a, 'ready', 'web.img');
    await assign('web.img');
    await ready;
    expect(driver.specs).toHaveLength(1);
    const spec = driver.specs[0];
    expect(spec).toMatchObject({
      id: 'web.img',
      image: 'flotilla/demo:v1',
      command: 'node server.js',
      cwd: join(dir, 'run', 'web.img'),
      memoryMiB: 256,
      cpuMillis: 250,
      stopGraceMs: 5000,
    });
    expect(spec?.env).toMatchObject({ GREETING: 'hi', DYNO: 'web.2', FLOTILLA_JOB_ID: 'web.img' });
    expect(await readdir(join(dir, 'run', 'web.img'))).toEqual([]);
    expect(fetched).toEqual([]);
    const [instance] = await discovery.instances('demo-web', { readyOnly: true });
    expect(instance).toMatchObject({ id: 'web.img', addr: `127.0.0.1:${spec?.env.PORT}` });
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.state).toBe('up');

    // Stopped: the scratch dir goes with the job.
    const ended = once(a, 'ended', 'web.img');
    await assign('web.img', 'stop');
    await ended;
    expect((await readdir(join(dir, 'run'))).filter((f) => f !== '.lease')).toEqual([]);
  });

  it('reports an image job on a driver that runs slugs as crashed, naming the driver, and starts nothing', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: false });
    const a = await agent(driver);
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.noimg');
    await assign('web.noimg');
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toContain('is an image: the fake driver runs slugs');
    expect(driver.specs).toEqual([]);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toMatchObject({
      state: 'crashed',
      message: expect.stringContaining('runs slugs'),
    });
  });

  it('stops a job discovery cannot hold (an id with a colon) and reports it crashed, saying why', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    const a = await agent(driver);
    const errors: unknown[] = [];
    a.on('error', (err) => errors.push(err));
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web:1');
    await assign('web:1'); // a valid cluster id, not a valid instance id
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toContain('cannot be published in discovery');
    expect(errors).toEqual([expect.objectContaining({ code: 'FLOTILLA_DISCOVERY_INVALID_ID' })]);
    expect(await driver.list()).toEqual([]);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.state).toBe('crashed');
  });

  it('publishes jobs under the host of its address', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    // localhost resolves to loopback; the agent publishes the name as given.
    const a = await agent(driver, { address: 'localhost:7000' });
    await a.start();
    const ready = once(a, 'ready', 'web.addr');
    await assign('web.addr');
    await ready;
    const [instance] = await discovery.instances('demo-web');
    expect(instance?.addr).toBe(`localhost:${driver.specs[0]?.env.PORT}`);
  });

  it('publishes its jobs with a heartbeat TTL below the shortest discovery TTL (1 s)', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    const a = await agent(driver, { heartbeatTtlMs: 500 });
    const failed = new Promise<unknown>((resolve) => a.once('error', resolve));
    const ac = new AbortController();
    const published = (async () => {
      for await (const ev of discovery.watch('demo-web', { signal: ac.signal }))
        if (ev.kind === 'up') return ev.instance.id;
      return undefined;
    })();
    await a.start();
    await assign('web.ttl');
    const outcome = await Promise.race([published, failed]);
    ac.abort();
    expect(outcome).toBe('web.ttl');
  });

  it('a stop calls drainWait after the instance left discovery and before the driver stops the job, and waits for it', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    const seen: unknown[] = [];
    let finish!: () => void;
    const drained = new Promise<void>((r) => (finish = r));
    let called!: () => void;
    const hookCalled = new Promise<void>((r) => (called = r));
    const drainWait: DrainWait = async (instance, signal) => {
      seen.push({
        instance,
        inDiscovery: (await discovery.instances('demo-web')).map((i) => i.id),
        job: (await driver.inspect('web.dr')).state,
        aborted: signal.aborted,
      });
      called();
      await drained;
    };
    // A bound of an hour: the stop can only finish because the hook resolved.
    const a = await agent(driver, { drainWait, drainMs: 3_600_000 });
    await a.start();
    const ready = once(a, 'ready', 'web.dr');
    await assign('web.dr');
    await ready;
    const ended = once(a, 'ended', 'web.dr');
    await assign('web.dr', 'stop');
    await hookCalled;
    expect(seen).toEqual([
      {
        instance: { service: 'demo-web', id: 'web.dr' },
        inDiscovery: [],
        job: 'running',
        aborted: false,
      },
    ]);
    expect((await driver.inspect('web.dr')).state).toBe('running'); // still draining
    finish();
    await ended;
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.state).toBe('down');
  });

  it('drainWait is bounded by drainMs: a hook that never resolves, rejects or throws does not hang the stop', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    const signals: AbortSignal[] = [];
    let calls = 0;
    const drainWait: DrainWait = (_instance, signal) => {
      signals.push(signal);
      calls++;
      if (calls === 2) return Promise.reject(new Error('router unreachable'));
      if (calls === 3) throw new Error('a hook that throws instead of rejecting');
      return new Promise(() => undefined); // ignores its signal and never resolves
    };
    const a = await agent(driver, { drainWait, drainMs: 100 });
    await a.start();
    for (const id of ['web.hang', 'web.fail', 'web.throw']) {
      const ready = once(a, 'ready', id);
      await assign(id);
      await ready;
      const ended = once<[string, string]>(a, 'ended', id);
      await assign(id, 'stop');
      expect((await ended)[1]).toBe('down');
    }
    expect(signals).toHaveLength(3);
    expect(signals.every((s) => s.aborted)).toBe(true);
  });

  it('close() mid-drain aborts the hook and lets the stop finish', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    let hookSignal: AbortSignal | undefined;
    let called!: () => void;
    const hookCalled = new Promise<void>((r) => (called = r));
    const drainWait: DrainWait = (_instance, signal) => {
      hookSignal = signal;
      called();
      return new Promise((_resolve, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
      );
    };
    const a = await agent(driver, { drainWait, drainMs: 3_600_000 });
    await a.start();
    const ready = once(a, 'ready', 'web.cl');
    await assign('web.cl');
    await ready;
    const ended = once<[string, string]>(a, 'ended', 'web.cl');
    await assign('web.cl', 'stop');
    await hookCalled;
    await a.close();
    expect(hookSignal?.aborted).toBe(true);
    expect((await ended)[1]).toBe('down');
    expect(await driver.list()).toEqual([]); // stopped, not left running
  });

  it('close({ stopJobs: true }) drains every job through the hook before stopping it', async () => {
    await release(image);
    const driver = new FakeDriver({ runsImages: true });
    const seen: [string, boolean, string][] = [];
    const drainWait: DrainWait = async (instance, signal) => {
      seen.push([instance.id, signal.aborted, (await driver.inspect(instance.id)).state]);
    };
    const a = await agent(driver, { drainWait, drainMs: 3_600_000 });
    await a.start();
    for (const id of ['web.x', 'web.y']) {
      const ready = once(a, 'ready', id);
      await assign(id);
      await ready;
    }
    await a.close({ stopJobs: true });
    expect(seen.sort()).toEqual([
      ['web.x', false, 'running'],
      ['web.y', false, 'running'],
    ]);
    expect(await driver.list()).toEqual([]);
  });
});
