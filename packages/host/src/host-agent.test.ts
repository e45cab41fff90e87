import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState, type HealthCheck, type JobRecord } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { packSlug } from '@flotilla/slug';
import { MemoryStore } from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { ArtifactCache } from './artifact-cache.js';
import type { DrainWait } from './drain-wait.js';
import { HostAgent, type HostAgentOptions } from './host-agent.js';
import { ProcessDriver } from './process-driver.js';
import { claimPortRange } from '../../../test/support/port-slots.js';

// A hello app: answers with its DYNO and a config var, /healthz with HEALTH_STATUS, exits on /crash.
const SERVER = `
const http = require('http');
const server = http.createServer((req, res) => {
  if (req.url === '/crash') { res.end('bye'); setTimeout(() => process.exit(3), 10); return; }
  if (req.url === '/healthz') { res.statusCode = Number(process.env.HEALTH_STATUS || 200); res.end(); return; }
  res.end('hello from ' + process.env.DYNO + ' ' + process.env.GREETING);
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { console.log('got SIGTERM'); server.close(() => process.exit(0)); });
`;

describe('HostAgent (ProcessDriver, MemoryStore)', () => {
  let dir: string;
  let store: MemoryStore;
  let cluster: ClusterState;
  let discovery: Discovery;
  let slug: { url: string; sha256: string; size: number };
  const agents: HostAgent[] = [];
  const drivers: ProcessDriver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-agent-'));
    await mkdir(join(dir, 'app'));
    await writeFile(join(dir, 'app', 'server.js'), SERVER);
    const packed = await packSlug(join(dir, 'app'), join(dir, 'slug.tgz'));
    slug = { url: pathToFileURL(packed.path).href, sha256: packed.sha256, size: packed.size };
    store = new MemoryStore();
    cluster = new ClusterState({ store });
    discovery = new Discovery({ store });
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close({ stopJobs: true }).catch(() => undefined);
    for (const d of drivers.splice(0)) {
      for (const job of await d.list().catch(() => []))
        await d.stop(job.id, { graceMs: 0 }).catch(() => undefined);
      await d.close();
    }
    await discovery.close();
    await cluster.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** What is left in an agent's workDir besides its own `.lease`: the jobs' directories. */
  async function jobDirs(workDir: string): Promise<string[]> {
    return (await readdir(join(dir, workDir))).filter((f) => f !== '.lease');
  }

  async function agent(
    id = 'h1',
    extra: Partial<HostAgentOptions> & { stateDir?: string } = {},
  ): Promise<HostAgent> {
    const driver = await ProcessDriver.create({
      stateDir: extra.stateDir ?? join(dir, `state-${id}`),
      logPollMs: 50,
    });
    drivers.push(driver);
    const a = new HostAgent({
      id,
      store,
      driver,
      address: '127.0.0.1:7000',
      capacity: { cpu: 4000, memory: 8192 },
      ports: await claimPortRange(20),
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, `run-${id}`),
      discovery,
      drainMs: 50,
      ...extra,
    });
    agents.push(a);
    return a;
  }

  async function release(
    extra: {
      healthCheck?: HealthCheck;
      config?: Record<string, string>;
      sha256?: string;
      url?: string;
      size?: number;
      type?: string;
      command?: string;
    } = {},
  ): Promise<void> {
    await cluster.putRelease({
      app: 'demo',
      release: 'v1',
      artifact: {
        type: 'slug',
        url: extra.url ?? slug.url,
        sha256: extra.sha256 ?? slug.sha256,
        size: extra.size ?? slug.size,
      },
      config: { GREETING: 'hi', ...extra.config },
      processes: {
        [extra.type ?? 'web']: {
          command: extra.command ?? 'exec node server.js',
          stopGraceMs: 5000,
          ...(extra.healthCheck === undefined ? {} : { healthCheck: extra.healthCheck }),
        },
      },
      createdAt: Date.now(),
    });
  }

  /** Writes a job record as the scheduler would. */
  async function assign(
    hostId: string,
    id: string,
    desired: 'run' | 'stop' = 'run',
  ): Promise<JobRecord> {
    const record: JobRecord = {
      id,
      app: 'demo',
      release: 'v1',
      type: 'web',
      hostId,
      index: 1,
      resources: { cpu: 100, memory: 256 },
      desired,
      createdAt: Date.now(),
    };
    await store.put(cluster.keys.job(hostId, id), JSON.stringify(record));
    return record;
  }

  const once = <T extends unknown[]>(
    a: HostAgent,
    event: 'ready' | 'ended' | 'started',
    jobId: string,
  ): Promise<T> =>
    new Promise((resolve) => {
      const on = (...args: unknown[]): void => {
        if (args[0] !== jobId) return;
        a.off(event, on);
        resolve(args as T);
      };
      a.on(event, on);
    });

  it('runs an assigned job from its release, publishes it once healthy, and stops it gracefully', async () => {
    await release();
    const a = await agent();
    await a.start();
    const ready = once(a, 'ready', 'web.a');
    await assign('h1', 'web.a');
    await ready;
    const [instance] = await discovery.instances('demo-web', { readyOnly: true });
    expect(instance?.id).toBe('web.a');
    const res = await fetch(`http://${instance?.addr}/`);
    expect(await res.text()).toBe('hello from web.1 hi');
    const [job] = await cluster.jobs({ app: 'demo' });
    expect(job?.status).toMatchObject({ state: 'up', port: Number(instance?.addr.split(':')[1]) });

    // The scheduler asks it to stop: deregistered, SIGTERM, exit 0, reported down.
    const ended = once<[string, string, string]>(a, 'ended', 'web.a');
    await assign('h1', 'web.a', 'stop');
    const [, state, message] = await ended;
    expect(state).toBe('down');
    expect(message).toContain('asked to stop');
    expect(await discovery.instances('demo-web')).toEqual([]);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toMatchObject({
      state: 'down',
      exitStatus: 0,
    });
    expect(await jobDirs('run-h1')).toEqual([]);
  });

  it('keeps a job whose health check fails out of discovery, and stops it after the boot grace (R10)', async () => {
    await release({
      config: { HEALTH_STATUS: '500' },
      healthCheck: {
        type: 'http',
        path: '/healthz',
        intervalMs: 50,
        // The message is the last probe's: an answer (HTTP 500) needs the server listening
        // when the grace ends and answering within the probe's timeout. A node process on a
        // loaded machine can take longer than 300 ms to listen (the message then said
        // "connection refused") and 500 ms to answer ("timed out").
        timeoutMs: 5000,
        threshold: 3,
        graceMs: 5000,
      },
    });
    const a = await agent();
    const seen: string[] = [];
    a.on('ready', (id) => seen.push(id));
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.b');
    await assign('h1', 'web.b');
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toContain('HTTP 500');
    expect(seen).toEqual([]);
    expect(await discovery.instances('demo-web')).toEqual([]);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.state).toBe('crashed');
  });

  it('deregisters a job that exits at once, and reports the crash', async () => {
    await release();
    const a = await agent();
    await a.start();
    const ready = once(a, 'ready', 'web.c');
    await assign('h1', 'web.c');
    await ready;
    const [instance] = await discovery.instances('demo-web');
    const ac = new AbortController();
    const events = discovery.watch('demo-web', { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await events.next()).value).toMatchObject({ kind: 'current' });
    const ended = once<[string, string, string]>(a, 'ended', 'web.c');
    await fetch(`http://${instance?.addr}/crash`);
    expect((await events.next()).value).toMatchObject({ kind: 'down', instance: { id: 'web.c' } });
    ac.abort();
    const [, state] = await ended;
    expect(state).toBe('crashed');
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toMatchObject({
      state: 'crashed',
      exitStatus: 3,
    });
  });

  it('fetches again a cached slug damaged on disk (same size), and the job runs', async () => {
    await release();
    const a = await agent();
    await a.start();
    const first = once(a, 'ready', 'web.r1');
    await assign('h1', 'web.r1');
    await first;
    // The cached copy rots: bytes flipped in the middle, the size unchanged.
    const cached = join(dir, 'artifacts', `${slug.sha256}.slug`);
    const bytes = await readFile(cached);
    for (let i = bytes.length >> 1; i < (bytes.length >> 1) + 16; i++)
      bytes[i] = (bytes[i] ?? 0) ^ 0xff;
    await writeFile(cached, bytes);
    const ready = once(a, 'ready', 'web.r2');
    const ended = once<[string, string, string]>(a, 'ended', 'web.r2');
    await assign('h1', 'web.r2');
    // Before: every start from the cached copy failed its digest, for as long as it was kept.
    const outcome = await Promise.race([ready.then(() => 'ready'), ended.then((e) => e[2])]);
    expect(outcome).toBe('ready');
    const sha = createHash('sha256')
      .update(await readFile(cached))
      .digest('hex');
    expect(sha).toBe(slug.sha256);
  });

  it('after a restart, adopts the running job instead of starting another', async () => {
    await release();
    const first = await agent();
    await first.start();
    const ready = once(first, 'ready', 'web.d');
    await assign('h1', 'web.d');
    await ready;
    const pid = (await drivers[0]?.inspect('web.d'))?.pid;
    expect(pid).toBeGreaterThan(0);
    // The agent goes away (its jobs keep running), and a new one comes up on the same state.
    await first.close();
    agents.splice(agents.indexOf(first), 1);
    await drivers.shift()?.close();
    const second = await agent();
    const started = once<[string, boolean]>(second, 'started', 'web.d');
    const again = once(second, 'ready', 'web.d');
    await second.start();
    expect(await started).toEqual(['web.d', true]);
    await again;
    expect((await drivers[0]?.inspect('web.d'))?.pid).toBe(pid);
    expect((await drivers[0]?.list())?.map((j) => j.id)).toEqual(['web.d']);
    expect(await discovery.instances('demo-web', { readyOnly: true })).toHaveLength(1);
  });

  it('restarted at once after its predecessor died, publishes the adopted job as soon as the dead instance expires', async () => {
    await release();
    // The first agent reaches the store through a view that can be cut: its death.
    const view = new PartitionableStore(store);
    const viewDiscovery = new Discovery({ store: view });
    const first = await agent('h1', {
      store: view,
      discovery: viewDiscovery,
      heartbeatTtlMs: 1000,
    });
    agents.splice(agents.indexOf(first), 1);
    first.on('error', () => undefined);
    await first.start();
    const ready = once(first, 'ready', 'web.k');
    await assign('h1', 'web.k');
    await ready;
    const pid = (await drivers[0]?.inspect('web.k'))?.pid;
    const ac = new AbortController();
    try {
      const events = discovery.watch('demo-web', { signal: ac.signal })[Symbol.asyncIterator]();
      expect((await events.next()).value).toMatchObject({
        kind: 'current',
        instances: [{ id: 'web.k', ready: true }],
      });
      // It dies: nothing it holds is renewed or released; its job runs on.
      view.partitioned = true;
      await drivers.shift()?.close();
      const second = await agent('h1', { heartbeatTtlMs: 1000 });
      second.on('error', () => undefined);
      const again = once(second, 'ready', 'web.k');
      await second.start();
      // The dead agent's instance holds the id until its lease expires; then the new agent's
      // registration, retried meanwhile, goes through.
      expect((await events.next()).value).toMatchObject({
        kind: 'down',
        instance: { id: 'web.k' },
      });
      expect((await events.next()).value).toMatchObject({
        kind: 'up',
        instance: { id: 'web.k', ready: true, meta: { host: 'h1' } },
      });
      await again;
      expect((await drivers[0]?.inspect('web.k'))?.pid).toBe(pid);
    } finally {
      ac.abort();
      await first.close();
      await viewDiscovery.close();
    }
  });

  it('publishes a job that became healthy while the store was partitioned once it heals', async () => {
    await release();
    const view = new PartitionableStore(store);
    const viewDiscovery = new Discovery({ store: view });
    const a = await agent('h1', { store: view, discovery: viewDiscovery, heartbeatTtlMs: 60_000 });
    // Cut off the moment the job runs: its health check passes while the store is unreachable.
    a.on('started', () => (view.partitioned = true));
    a.on('error', () => undefined);
    // Seen from discovery: the job's registration was tried, and refused.
    let refusedOnce!: () => void;
    const refused = new Promise<void>((resolve) => (refusedOnce = resolve));
    const register = viewDiscovery.register.bind(viewDiscovery);
    viewDiscovery.register = async (options) => {
      try {
        return await register(options);
      } catch (err) {
        refusedOnce();
        throw err;
      }
    };
    const ac = new AbortController();
    try {
      await a.start();
      const events = discovery.watch('demo-web', { signal: ac.signal })[Symbol.asyncIterator]();
      expect((await events.next()).value).toMatchObject({ kind: 'current', instances: [] });
      const ready = once(a, 'ready', 'web.pp');
      await assign('h1', 'web.pp');
      await refused;
      view.partitioned = false;
      expect((await events.next()).value).toMatchObject({
        kind: 'up',
        instance: { id: 'web.pp', ready: true },
      });
      await ready;
    } finally {
      ac.abort();
      await a.close({ stopJobs: true });
      agents.splice(agents.indexOf(a), 1);
      await viewDiscovery.close();
    }
  });

  describe('artifact cache eviction', () => {
    const slugFile = (): string => join(dir, 'artifacts', `${slug.sha256}.slug`);
    const exists = (path: string): Promise<boolean> =>
      readFile(path).then(
        () => true,
        () => false,
      );

    it('keeps the slug of a running job however small maxBytes is, and evicts it once the job has ended', async () => {
      await release();
      const cache = new ArtifactCache({ dir: join(dir, 'artifacts'), maxBytes: 0 });
      const a = await agent('h1', { artifacts: cache });
      await a.start();
      const ready = once(a, 'ready', 'web.g1');
      await assign('h1', 'web.g1');
      await ready;
      await cache.prune();
      expect(await exists(slugFile())).toBe(true);
      expect(cache.usage()).toMatchObject({ artifacts: 1, pinned: 1 });
      const ended = once(a, 'ended', 'web.g1');
      await assign('h1', 'web.g1', 'stop');
      await ended;
      await cache.prune();
      expect(await exists(slugFile())).toBe(false);
    });

    it('after a restart, keeps the slug of the job it adopts while the others are pruned', async () => {
      await release();
      const first = await agent('h1', {
        artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
      });
      await first.start();
      const ready = once(first, 'ready', 'web.g2');
      await assign('h1', 'web.g2');
      await ready;
      await first.close();
      agents.splice(agents.indexOf(first), 1);
      await drivers.shift()?.close();
      // A slug of a job that ended while no agent ran, used long ago.
      const stale = join(dir, 'artifacts', `${'e'.repeat(64)}.slug`);
      await writeFile(stale, 'an old slug');
      const old = new Date(Date.now() - 86_400_000);
      await utimes(stale, old, old);

      const cache = new ArtifactCache({ dir: join(dir, 'artifacts'), maxBytes: slug.size });
      const second = await agent('h1', { artifacts: cache });
      const adopted = once<[string, boolean]>(second, 'started', 'web.g2');
      await second.start();
      expect(await adopted).toEqual(['web.g2', true]);
      await cache.prune(); // after the agent's own pass
      expect(await exists(stale)).toBe(false);
      expect(await exists(slugFile())).toBe(true);
      expect(cache.usage()).toMatchObject({ artifacts: 1, pinned: 1 });
    });
  });

  it('refuses a tampered artifact: the job is reported crashed and nothing is extracted', async () => {
    await release({ sha256: 'f'.repeat(64) });
    const a = await agent();
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.e');
    await assign('h1', 'web.e');
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toMatch(/sha256/);
    expect(await jobDirs('run-h1')).toEqual([]);
    expect(
      (await readdir(join(dir, 'artifacts')).catch(() => [])).filter((n) => n !== '.lock'),
    ).toEqual([]);
  });
  it('refuses bad options with coded errors', async () => {
    const driver = await ProcessDriver.create({ stateDir: join(dir, 'state-opts') });
    drivers.push(driver);
    const base: HostAgentOptions = {
      id: 'h1',
      store,
      driver,
      address: '127.0.0.1:7000',
      capacity: { cpu: 4000, memory: 8192 },
      ports: { from: 20000, to: 20010 },
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'run'),
    };
    for (const bad of [
      { id: 'a/b' },
      { id: '' },
      { ports: { from: Number.NaN, to: 20010 } },
      { ports: { from: 20010, to: 20000 } },
      { ports: { from: 0, to: 0 } },
      { heartbeatTtlMs: Number.NaN },
      { heartbeatTtlMs: 0 },
      { drainMs: -1 },
      { workDir: '' },
      { address: '' },
      { address: '127.0.0.1' },
      { address: '127.0.0.1:0' },
      { address: '127.0.0.1:70000' },
      { address: '::1:7000' },
      { address: '[::1:7000' },
      { address: 'a b:7000' },
      { address: 'host\u0000:7000' },
      { address: '300.1.2.3:7000' },
      { drainWait: 'soon' as unknown as DrainWait },
      { retainEndedJobs: -1 },
      { retainEndedLines: 1501 },
      { retainEndedBytes: 0.5 },
      { retainEndedMs: Number.NaN },
    ] satisfies Partial<HostAgentOptions>[]) {
      expect(() => new HostAgent({ ...base, ...bad }), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
      );
    }
    for (const bad of [{ dir: '' }, { dir: join(dir, 'a'), token: 'x\ny' }]) {
      expect(() => new ArtifactCache(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
      );
    }
  });

  it('close() waits for the artifact prune start() began: nothing writes in the cache dir after', async () => {
    // The prune start() runs in the background takes the cache dir's lock and reads the dir:
    // close() resolved before it, and the suite's rm of the dir failed with ENOTEMPTY when the
    // lock file came after (3 runs of this file in 4 failed so on a busy machine).
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let pruned = false;
    class HeldCache extends ArtifactCache {
      override async prune(): Promise<string[]> {
        await gate;
        const removed = await super.prune();
        pruned = true;
        return removed;
      }
    }
    const a = await agent('h1', { artifacts: new HeldCache({ dir: join(dir, 'artifacts') }) });
    try {
      await a.start();
      const closing = a.close();
      // No event says "close() is waiting": without the wait it resolves well within 500 ms.
      const first = await Promise.race([
        closing.then(() => 'closed'),
        new Promise<string>((resolve) => setTimeout(() => resolve('still closing'), 500)),
      ]);
      expect(first).toBe('still closing');
      open();
      await closing;
      expect(pruned).toBe(true);
    } finally {
      open(); // a failed assertion must not leave afterEach's close() waiting on the gate
    }
  });

  it('reports a job whose process type is missing from its release as crashed, saying so', async () => {
    await release({ type: 'worker' });
    const a = await agent();
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.f');
    await assign('h1', 'web.f');
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toMatch(/has no process type web/);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toMatchObject({ state: 'crashed' });
    expect(await drivers[0]?.list()).toEqual([]);
  });

  it('reports a job whose release does not exist as crashed, with a coded error', async () => {
    const a = await agent();
    const errors: unknown[] = [];
    a.on('error', (e) => errors.push(e));
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.g');
    await assign('h1', 'web.g');
    const [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toMatch(/v1/);
    expect(errors).toEqual([]);
  });

  it('refuses a slug that inflates past slugMaxBytes (a gzip bomb) or holds more than slugMaxEntries', async () => {
    // 8 MiB of zeros gzip to a few KiB: past a 1 MiB limit, refused before it fills the disk
    await mkdir(join(dir, 'bomb'));
    await writeFile(join(dir, 'bomb', 'zeros'), Buffer.alloc(8 * 1024 * 1024));
    const bomb = await packSlug(join(dir, 'bomb'), join(dir, 'bomb.tgz'));
    expect(bomb.size).toBeLessThan(64 * 1024);
    await release({ url: pathToFileURL(bomb.path).href, sha256: bomb.sha256, size: bomb.size });
    const a = await agent('h1', { slugMaxBytes: 1024 * 1024, slugMaxEntries: 2 });
    await a.start();
    let ended = once<[string, string, string]>(a, 'ended', 'web.b');
    await assign('h1', 'web.b');
    let [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toMatch(/maxBytes/);
    expect(await jobDirs('run-h1')).toEqual([]);

    await mkdir(join(dir, 'many'));
    for (let i = 0; i < 5; i++) await writeFile(join(dir, 'many', `f${i}`), 'x');
    const many = await packSlug(join(dir, 'many'), join(dir, 'many.tgz'));
    const v1 = await cluster.getRelease('demo', 'v1');
    if (v1 === undefined) throw new Error('release v1 is missing');
    await cluster.putRelease({
      ...v1,
      release: 'v2',
      artifact: {
        type: 'slug',
        url: pathToFileURL(many.path).href,
        sha256: many.sha256,
        size: many.size,
      },
    });
    ended = once<[string, string, string]>(a, 'ended', 'web.m');
    const record: JobRecord = {
      id: 'web.m',
      app: 'demo',
      release: 'v2',
      type: 'web',
      hostId: 'h1',
      index: 2,
      resources: { cpu: 100, memory: 256 },
      desired: 'run',
      createdAt: Date.now(),
    };
    await store.put(cluster.keys.job('h1', 'web.m'), JSON.stringify(record));
    [, state, message] = await ended;
    expect(state).toBe('crashed');
    expect(message).toMatch(/maxEntries/);
    expect(await jobDirs('run-h1')).toEqual([]);
  });

  it('refuses slug limits that are not whole numbers', async () => {
    const bads = [{ slugMaxBytes: -1 }, { slugMaxBytes: 1.5 }, { slugMaxEntries: Number.NaN }];
    for (const [i, bad] of bads.entries()) {
      await expect(agent(`h${i}`, bad)).rejects.toMatchObject({
        code: 'FLOTILLA_HOST_INVALID_OPTIONS',
      });
    }
  });

  it('leaves nothing in workDir when a slug fails to extract half-way', async () => {
    // A real slug cut in half, declared with the digest of what is left: it verifies, then breaks.
    const whole = await readFile(new URL(slug.url));
    const half = whole.subarray(0, Math.floor(whole.length / 2));
    await writeFile(join(dir, 'half.tgz'), half);
    await release({
      url: pathToFileURL(join(dir, 'half.tgz')).href,
      sha256: createHash('sha256').update(half).digest('hex'),
      size: half.length,
    });
    const a = await agent();
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.h');
    await assign('h1', 'web.h');
    const [, state] = await ended;
    expect(state).toBe('crashed');
    expect(await jobDirs('run-h1')).toEqual([]);
  });

  it('close() while a job is mid-start (its artifact fetch in flight) leaves nothing running', async () => {
    let fetching!: () => void;
    const fetched = new Promise<void>((r) => (fetching = r));
    const hold: typeof fetch = (_url, init) =>
      new Promise((_, reject) => {
        fetching();
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    await release({ url: 'http://127.0.0.1:9/slug.tgz' });
    const a = await agent('h1', {
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts'), fetch: hold }),
    });
    const errors: unknown[] = [];
    a.on('error', (e) => errors.push(e));
    await a.start();
    await assign('h1', 'web.i');
    await fetched;
    await a.close({ stopJobs: true });
    expect(a.state).toBe('stopped');
    expect(await drivers[0]?.list()).toEqual([]);
    expect(await jobDirs('run-h1')).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('close() while start() is registering ends stopped, and start() does not carry on', async () => {
    const a = await agent();
    const starting = a.start();
    const closing = a.close();
    await Promise.allSettled([starting, closing]);
    expect(a.state).toBe('stopped');
    await assign('h1', 'web.j');
    await release();
    expect(a.jobs).toEqual([]);
    expect(await drivers[0]?.list()).toEqual([]);
  });

  it('close() while a stop is draining lets the stop finish', async () => {
    await release();
    const a = await agent('h1', { drainMs: 300 });
    const errors: unknown[] = [];
    a.on('error', (e) => errors.push(e));
    await a.start();
    const ready = once(a, 'ready', 'web.k');
    await assign('h1', 'web.k');
    await ready;
    const ac = new AbortController();
    const events = discovery.watch('demo-web', { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await events.next()).value).toMatchObject({ kind: 'current' });
    const ended = once<[string, string, string]>(a, 'ended', 'web.k');
    await assign('h1', 'web.k', 'stop');
    while ((await events.next()).value?.kind !== 'down'); // deregistered: draining now
    ac.abort();
    await a.close();
    const [, state] = await ended;
    expect(state).toBe('down');
    expect(await drivers[0]?.list()).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('a job that exits by itself while it is being stopped is reported once, down', async () => {
    await release();
    const a = await agent('h1', { drainMs: 300 });
    const errors: unknown[] = [];
    const endings: string[] = [];
    a.on('error', (e) => errors.push(e));
    a.on('ended', (id, state) => endings.push(`${id} ${state}`));
    await a.start();
    const ready = once(a, 'ready', 'web.l');
    await assign('h1', 'web.l');
    await ready;
    const [instance] = await discovery.instances('demo-web');
    const ac = new AbortController();
    const events = discovery.watch('demo-web', { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await events.next()).value).toMatchObject({ kind: 'current' });
    const ended = once<[string, string, string]>(a, 'ended', 'web.l');
    await assign('h1', 'web.l', 'stop');
    while ((await events.next()).value?.kind !== 'down'); // deregistered: draining now
    ac.abort();
    await fetch(`http://${instance?.addr}/crash`); // exits 3 during the drain
    await ended;
    expect(endings).toEqual(['web.l down']);
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toMatchObject({
      state: 'down',
      exitStatus: 3,
    });
    expect(errors).toEqual([]);
  });

  it('reports what it did while the store was partitioned once it heals', async () => {
    let fetching!: () => void;
    const fetched = new Promise<void>((r) => (fetching = r));
    let go!: () => void;
    const released = new Promise<void>((r) => (go = r));
    const files = new ArtifactCache({ dir: join(dir, 'artifacts-src') });
    const path = await files.get(slug);
    const hold: typeof fetch = async () => {
      fetching();
      await released;
      return new Response(await readFile(path));
    };
    await release({ url: 'http://127.0.0.1:9/slug.tgz' });
    const view = new PartitionableStore(store);
    const a = await agent('h1', {
      store: view,
      heartbeatTtlMs: 60_000,
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts'), fetch: hold }),
    });
    a.on('error', () => undefined);
    await a.start();
    await assign('h1', 'web.m');
    await fetched;
    view.partitioned = true; // the job starts, its reports cannot be written
    const ready = once(a, 'ready', 'web.m');
    go();
    await ready;
    expect((await cluster.jobs({ app: 'demo' }))[0]?.status).toBeUndefined();
    const key = cluster.keys.jobStatus('h1', 'web.m');
    const up = (async () => {
      for await (const ev of store.watch(key, { signal: AbortSignal.timeout(10_000) })) {
        if (ev.type === 'put' && ev.kv.key === key && ev.kv.value.includes('"up"')) return true;
      }
      return false;
    })();
    view.partitioned = false;
    expect(await up).toBe(true);
  });
  it('publishes a job on a port of its own when another process listens on the first port of the range', async () => {
    await release();
    const ports = await claimPortRange(5);
    // A stranger on the port the agent would have handed out first: it must get no traffic.
    let strangerConnections = 0;
    const stranger = createServer((c) => {
      strangerConnections++;
      c.end('HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nstranger');
    });
    await new Promise<void>((r) => stranger.listen(ports.from, '127.0.0.1', r));
    try {
      const a = await agent('h1', { ports });
      await a.start();
      const ready = once(a, 'ready', 'web.p');
      await assign('h1', 'web.p');
      await ready;
      const [instance] = await discovery.instances('demo-web', { readyOnly: true });
      expect(instance?.addr).toBe(`127.0.0.1:${ports.from + 1}`);
      expect(await (await fetch(`http://${instance?.addr}/`)).text()).toBe('hello from web.1 hi');
      expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.port).toBe(ports.from + 1);
      expect(strangerConnections).toBe(0);
    } finally {
      await new Promise((r) => stranger.close(r));
    }
  });

  it('keeps the last lines and exit status of a crashed job after the driver forgot it', async () => {
    await release({ command: 'echo starting; echo "it broke" >&2; exit 3' });
    const a = await agent();
    await a.start();
    const ended = once<[string, string, string]>(a, 'ended', 'web.l');
    await assign('h1', 'web.l');
    const [, state] = await ended;
    expect(state).toBe('crashed');
    // The driver has forgotten it...
    await expect(drivers[0]?.inspect('web.l')).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_NOT_FOUND',
    });
    // ...the agent has not: what `flotilla logs` and a failed deploy's report read.
    const read = async (options = {}): Promise<string[]> => {
      const out: string[] = [];
      for await (const l of a.logs('web.l', options)) out.push(`${l.stream}:${l.line}`);
      return out;
    };
    // stdout and stderr are read apart by the driver: their relative order is not kept.
    const all = await read();
    expect(all.slice(0, 2).sort()).toEqual(['stderr:it broke', 'stdout:starting']);
    expect(all[2]).toBe('system:web.l exited with code 3');
    expect(all).toHaveLength(3);
    expect(await read({ tail: 2 })).toEqual(all.slice(1));
    // Following a job that ended gives its lines, then ends.
    expect(await read({ follow: true, signal: AbortSignal.timeout(5000) })).toEqual(all);
    expect(a.endedJob('web.l')).toMatchObject({
      id: 'web.l',
      app: 'demo',
      type: 'web',
      state: 'crashed',
      exitStatus: 3,
      lines: 3,
    });
    expect(a.endedJob('web.l')?.message).toContain('3');
    await expect(read({ tail: -1 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    // A job never run here is not found, as the driver says.
    const none = a.logs('web.nope')[Symbol.asyncIterator]().next();
    await expect(none).rejects.toMatchObject({ code: 'FLOTILLA_HOST_JOB_NOT_FOUND' });
    expect(a.endedJob('web.nope')).toBeUndefined();
    for (const bad of ['a/b', 'web.l\u0000', '', 'x'.repeat(10_000)])
      await expect(a.logs(bad)[Symbol.asyncIterator]().next()).rejects.toMatchObject({
        code: 'FLOTILLA_HOST_JOB_NOT_FOUND',
      });
  });

  it('keeps at most retainEndedJobs ended jobs and retainEndedLines lines of each, oldest forgotten first', async () => {
    await release({ command: 'for i in 1 2 3 4 5; do echo line $i; done; exit 1' });
    const a = await agent('h1', { retainEndedJobs: 2, retainEndedLines: 2 });
    await a.start();
    for (const id of ['web.r1', 'web.r2', 'web.r3']) {
      const ended = once(a, 'ended', id);
      await assign('h1', id);
      await ended;
    }
    const lines = async (id: string): Promise<string[]> => {
      const out: string[] = [];
      for await (const l of a.logs(id)) out.push(l.line);
      return out;
    };
    expect(a.endedJob('web.r1')).toBeUndefined();
    await expect(lines('web.r1')).rejects.toMatchObject({ code: 'FLOTILLA_HOST_JOB_NOT_FOUND' });
    expect(await lines('web.r2')).toEqual(['line 5', 'web.r2 exited with code 1']);
    expect(await lines('web.r3')).toEqual(['line 5', 'web.r3 exited with code 1']);
  });

  it('remembers a job that could not start, and the last words of a job it stopped', async () => {
    const a = await agent();
    await a.start();
    const failed = once(a, 'ended', 'web.n');
    await assign('h1', 'web.n'); // its release does not exist yet
    await failed;
    expect(a.endedJob('web.n')).toMatchObject({ state: 'crashed', lines: 0 });
    expect(a.endedJob('web.n')?.message).toMatch(/could not start/);
    const none: unknown[] = [];
    for await (const l of a.logs('web.n')) none.push(l);
    expect(none).toEqual([]);

    await release();
    const ready = once(a, 'ready', 'web.s');
    await assign('h1', 'web.s');
    await ready;
    const stopped = once(a, 'ended', 'web.s');
    await assign('h1', 'web.s', 'stop');
    await stopped;
    const words: string[] = [];
    for await (const l of a.logs('web.s')) words.push(l.line);
    expect(words).toContain('got SIGTERM');
    expect(a.endedJob('web.s')).toMatchObject({ state: 'down', exitStatus: 0 });
  });
  it('reads a job run again under the same id from the driver, not from what was kept of its crash', async () => {
    const marker = join(dir, 'ran-once');
    await release({
      command: `if [ -e ${marker} ]; then echo second run; exec sleep 30; fi; touch ${marker}; echo first run; exit 3`,
    });
    const a = await agent();
    await a.start();
    const ended = once(a, 'ended', 'web.again');
    await assign('h1', 'web.again');
    await ended;
    expect(a.endedJob('web.again')).toMatchObject({ exitStatus: 3 });
    const started = once(a, 'started', 'web.again');
    await assign('h1', 'web.again'); // the record written again: the agent runs it anew
    await started;
    expect(a.endedJob('web.again')).toBeUndefined();
    const seen: string[] = [];
    for await (const l of a.logs('web.again', {
      follow: true,
      signal: AbortSignal.timeout(10_000),
    })) {
      seen.push(l.line);
      if (l.line === 'second run') break;
    }
    expect(seen).toEqual(['second run']);
  });
});

describe('HostAgent: one host id, one agent', () => {
  it('refuses a second live agent with the same host id, and lets a restart take its own heartbeat back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-agent-twin-'));
    const store = new MemoryStore();
    const drivers: ProcessDriver[] = [];
    /** An agent with host id `same` on the machine `machine` (its own state and work dirs). */
    const make = async (machine: string): Promise<HostAgent> => {
      const driver = await ProcessDriver.create({ stateDir: join(dir, `state-${machine}`) });
      drivers.push(driver);
      return new HostAgent({
        id: 'same',
        store,
        driver,
        address: '127.0.0.1:7000',
        capacity: { cpu: 1000, memory: 1024 },
        ports: { from: 40000, to: 40009 },
        artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
        workDir: join(dir, `run-${machine}`),
        heartbeatTtlMs: 1000,
      });
    };
    try {
      const first = await make('a');
      await first.start();
      // Another machine configured with the same id: refused once 2 TTLs have passed.
      const twin = await make('b');
      await expect(twin.start()).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_HOST_IN_USE' });
      await twin.close();
      // The first agent restarts on its machine: it takes its heartbeat back at once.
      await first.close();
      await drivers[0]?.close();
      const restarted = await make('a');
      const t0 = Date.now();
      await restarted.start();
      // Waiting for the old lease would take 2 TTLs (2000 ms), as the twin's refusal did; the
      // margin below that is for a start on a loaded machine, not a speed target.
      expect(Date.now() - t0).toBeLessThan(1900);
      await restarted.close({ stopJobs: true });

      // An agent that closes and is not restarted: its heartbeat runs out after the TTL (it is
      // not renewed for as long as this process lives), and the host goes down.
      const lone = await make('c');
      await lone.start();
      const cluster = new ClusterState({ store });
      const ac = new AbortController();
      const beats = store.watch(cluster.keys.heartbeat('same'), { signal: ac.signal });
      const events = beats[Symbol.asyncIterator]();
      await lone.close();
      const t1 = Date.now();
      expect((await events.next()).value).toMatchObject({ type: 'delete' });
      expect(Date.now() - t1).toBeGreaterThan(500); // by expiry, not by a revoke
      ac.abort();
      expect((await cluster.hosts())[0]?.state).toBe('down');
      await cluster.close();
    } finally {
      for (const d of drivers) await d.close().catch(() => undefined);
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
