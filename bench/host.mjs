#!/usr/bin/env node
// Host agent: how fast an assigned job becomes ready, how many jobs one host starts per second,
// and how fast an exited job leaves discovery. Prints one JSON object.
//
//   node bench/host.mjs [--trials 20] [--jobs 200] [--store memory|etcd] [--driver process|docker]
//
// A hello app (a node HTTP server) in a slug served from file://, run by one HostAgent on one
// store; the web type's default health check (tcp on PORT). Everything on 127.0.0.1.
// - assign_to_ready_ms: a job record written to the store (as a scheduler would) to its instance
//   ready in discovery, one job at a time, p50/p99 over the trials; assign_to_started_ms, the
//   part of it until the driver's start resolved (the rest is the app booting and the check)
// - burst: `--jobs` job records written at once (one transaction per 100); jobs started per
//   second (the driver's start resolved) and ready per second (ready in discovery), from the
//   first write to the last job
// - exit_to_gone_ms: a ready job's process killed (SIGKILL through the driver) to its instance
//   leaving discovery, p50/p99 over the trials
// `--driver docker` runs the jobs with DockerDriver from @flotilla/docker (imported only then).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClusterState } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { ArtifactCache, HostAgent, ProcessDriver } from '@flotilla/host';
import { packSlug } from '@flotilla/slug';
import { MemoryStore } from '@flotilla/store';
import { percentile } from './lib/stats.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const TRIALS = Number(arg('trials', '20'));
const JOBS = Number(arg('jobs', '200'));
const STORE = arg('store', 'memory');
const DRIVER = arg('driver', 'process');
if (!Number.isInteger(TRIALS) || TRIALS < 1)
  throw new Error('--trials takes a whole number from 1');
if (!Number.isInteger(JOBS) || JOBS < 1) throw new Error('--jobs takes a whole number from 1');
if (!['memory', 'etcd'].includes(STORE)) throw new Error('--store takes memory or etcd');
if (!['process', 'docker'].includes(DRIVER)) throw new Error('--driver takes process or docker');

const pct = (xs) => ({ p50: percentile(xs, 50, 1), p99: percentile(xs, 99, 1), n: xs.length });

const HELLO = `
const http = require('http');
const server = http.createServer((req, res) => res.end('hello from ' + process.env.DYNO));
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** `n` consecutive loopback ports free now. */
async function freePortRange(n) {
  for (;;) {
    // Below the ephemeral range (32768-60999): a port an outgoing connection took (a health
    // probe's own end, say) would fail a job with EADDRINUSE.
    const from = 20000 + Math.floor(Math.random() * (12700 - n));
    const ok = await new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(from, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return { from, to: from + n - 1 };
  }
}

const cleanups = [];
const dir = await mkdtemp(join(tmpdir(), 'flotilla-bench-host-'));
cleanups.push(() => rm(dir, { recursive: true, force: true }));

async function createStore() {
  if (STORE === 'memory') return new MemoryStore();
  const [{ EtcdStore }, { acquireEtcd }] = await Promise.all([
    import('@flotilla/etcd'),
    import('../scripts/etcd.mjs'),
  ]);
  const etcd = await acquireEtcd();
  cleanups.push(etcd.release);
  const s = new EtcdStore({ endpoints: etcd.endpoints, prefix: `/bench-host-${process.pid}/` });
  cleanups.push(() => s.deletePrefix('').catch(() => undefined));
  return s;
}

async function createDriver(stateDir) {
  if (DRIVER === 'process') return ProcessDriver.create({ stateDir });
  const [mod, { acquireDocker }, { default: Docker }] = await Promise.all([
    import('@flotilla/docker'),
    import('../scripts/docker.mjs'),
    import('dockerode'),
  ]);
  if (typeof mod.DockerDriver !== 'function')
    throw new Error('@flotilla/docker exports no DockerDriver yet: run with --driver process');
  const engine = await acquireDocker();
  cleanups.push(engine.release);
  const docker = new Docker({ socketPath: engine.socketPath });
  // The stack image slugs run in, built from this host's files (nothing is pulled).
  const stack = await mod.createStackImage({ docker });
  return mod.DockerDriver.create({
    docker,
    instanceId: `bench-host-${process.pid}`,
    stackImage: stack.image,
    labels: { 'bench.flotilla': 'host' },
  });
}

let exitCode = 0;
let cleaning;
const cleanUp = () =>
  (cleaning ??= (async () => {
    for (const c of cleanups) await c().catch((err) => console.error('cleanup:', err.message));
  })());
// Interrupted (a timeout, ^C): the jobs started so far are stopped, not left running.
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    console.error(`${sig}: cleaning up`);
    void cleanUp().finally(() => process.exit(1));
  });
try {
  await mkdir(join(dir, 'hello'));
  await writeFile(join(dir, 'hello', 'server.js'), HELLO);
  const packed = await packSlug(join(dir, 'hello'), join(dir, 'hello.tgz'));

  const store = await createStore();
  const cluster = new ClusterState({ store });
  const discovery = new Discovery({ store });
  const driver = await createDriver(join(dir, 'state'));
  const agent = new HostAgent({
    id: 'bench-host',
    store,
    driver,
    address: '127.0.0.1:7000',
    capacity: { cpu: 1_000_000, memory: 1_000_000 },
    ports: await freePortRange(JOBS + TRIALS * 2 + 10),
    artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
    workDir: join(dir, 'run'),
    discovery,
    drainMs: 0,
  });
  agent.on('error', (err) => console.error('agent error:', err.message));
  cleanups.unshift(async () => {
    await agent.close({ stopJobs: true });
    for (const job of await driver.list().catch(() => []))
      await driver.stop(job.id, { graceMs: 0 }).catch(() => undefined);
    await driver.close();
    await discovery.close();
    await cluster.close();
    await store.close();
  });
  await cluster.putRelease({
    app: 'bench',
    release: 'v1',
    artifact: {
      type: 'slug',
      url: pathToFileURL(packed.path).href,
      sha256: packed.sha256,
      size: packed.size,
    },
    config: {},
    processes: { web: { command: 'exec node server.js', stopGraceMs: 1000 } },
    createdAt: Date.now(),
  });
  await agent.start();

  // Discovery events of the bench's service, by instance id: ready (up/update ready) and gone.
  const waiters = new Map(); // `${kind}:${id}` -> resolve(time)
  const wait = (kind, id) => new Promise((resolve) => waiters.set(`${kind}:${id}`, resolve));
  const fire = (kind, id) => {
    const key = `${kind}:${id}`;
    const resolve = waiters.get(key);
    if (resolve === undefined) return;
    waiters.delete(key);
    resolve(performance.now());
  };
  const watching = new AbortController();
  const watchLoop = (async () => {
    try {
      for await (const ev of discovery.watch('bench-web', { signal: watching.signal })) {
        if ((ev.kind === 'up' || ev.kind === 'update') && ev.instance.ready)
          fire('ready', ev.instance.id);
        else if (ev.kind === 'down') fire('gone', ev.instance.id);
      }
    } catch (err) {
      if (!watching.signal.aborted) console.error('discovery watch failed:', err);
    }
  })();
  cleanups.unshift(async () => {
    watching.abort();
    await watchLoop;
  });
  const started = new Map(); // id -> resolve(time) on the agent's `started`
  agent.on('started', (id) => {
    const resolve = started.get(id);
    started.delete(id);
    resolve?.(performance.now());
  });
  /** Resolves with the message when the job ends (for any reason). */
  const ended = (id) =>
    new Promise((resolve) => {
      const on = (jobId, _state, message) => {
        if (jobId !== id) return;
        agent.off('ended', on);
        resolve(message);
      };
      agent.on('ended', on);
    });
  /** The time the job is ready in discovery; rejects if it ends first (no bench hangs on it). */
  const readyOrFailed = (id) =>
    Promise.race([
      wait('ready', id),
      ended(id).then((message) => {
        throw new Error(`job ${id} ended before it was ready: ${message}`);
      }),
    ]);

  let n = 0;
  const record = (id) =>
    JSON.stringify({
      id,
      app: 'bench',
      release: 'v1',
      type: 'web',
      hostId: 'bench-host',
      index: ++n,
      // Half a core: DockerDriver enforces it, and a hello app booting on 1% of a core takes seconds.
      resources: { cpu: 500, memory: 128 },
      desired: 'run',
      createdAt: Date.now(),
    });
  const jobKey = (id) => cluster.keys.job('bench-host', id);
  /** Removes a job's record (unassigned: the agent stops it) and waits for its end. */
  const unassign = async (id) => {
    const done = ended(id);
    await store.delete(jobKey(id));
    await done;
  };

  // 1. assignment written -> ready in discovery, one at a time.
  const assignToReady = [];
  const assignToStarted = [];
  for (let t = 0; t < TRIALS; t++) {
    const id = `lat-${t}`;
    const ready = readyOrFailed(id);
    const isStarted = new Promise((resolve) => started.set(id, resolve));
    const t0 = performance.now();
    await store.put(jobKey(id), record(id));
    assignToReady.push((await ready) - t0);
    assignToStarted.push((await isStarted) - t0);
    await unassign(id);
  }

  // 3. process exit -> instance gone from discovery.
  const exitToGone = [];
  for (let t = 0; t < TRIALS; t++) {
    const id = `exit-${t}`;
    const ready = readyOrFailed(id);
    await store.put(jobKey(id), record(id));
    await ready;
    const gone = wait('gone', id);
    const crashed = ended(id);
    const t0 = performance.now();
    await driver.signal(id, 'SIGKILL');
    exitToGone.push((await gone) - t0);
    await crashed;
    await store.delete(jobKey(id));
  }

  // 2. a burst of JOBS assignments at once.
  const ids = Array.from({ length: JOBS }, (_, i) => `burst-${i}`);
  const startedAt = ids.map((id) => new Promise((resolve) => started.set(id, resolve)));
  const readyAt = ids.map((id) =>
    readyOrFailed(id).catch((err) => {
      console.error(err.message);
      return err;
    }),
  );
  const t0 = performance.now();
  for (let i = 0; i < ids.length; i += 100) {
    await store.txn({
      compare: [],
      success: ids
        .slice(i, i + 100)
        .map((id) => ({ op: 'put', key: jobKey(id), value: record(id) })),
    });
  }
  const outcomes = await Promise.all(readyAt);
  const failed = outcomes.filter((o) => o instanceof Error);
  const readyTimes = outcomes.filter((o) => typeof o === 'number');
  for (const [i, id] of ids.entries()) if (outcomes[i] instanceof Error) started.delete(id);
  // Jobs that failed may never have started; the others have.
  const startTimes = await Promise.all(startedAt.filter((_, i) => !(outcomes[i] instanceof Error)));
  const lastStarted = Math.max(...startTimes);
  const lastReady = Math.max(...readyTimes);
  const burst = {
    jobs: JOBS,
    started_per_s: Math.round((startTimes.length / (lastStarted - t0)) * 1000 * 10) / 10,
    ready_per_s: Math.round((readyTimes.length / (lastReady - t0)) * 1000 * 10) / 10,
    all_ready_ms: Math.round(lastReady - t0),
    failed: failed.length,
    ...(failed.length === 0 ? {} : { first_failure: failed[0].message }),
  };
  await Promise.all(
    ids.map((id, i) => (outcomes[i] instanceof Error ? store.delete(jobKey(id)) : unassign(id))),
  );

  console.log(
    JSON.stringify({
      bench: 'host',
      driver: DRIVER,
      store: STORE,
      trials: TRIALS,
      assign_to_ready_ms: pct(assignToReady),
      assign_to_started_ms: pct(assignToStarted),
      burst,
      exit_to_gone_ms: pct(exitToGone),
    }),
  );
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
