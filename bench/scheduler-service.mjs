#!/usr/bin/env node
// The Scheduler service committing to a store. Prints one JSON object.
//
//   node --max-old-space-size=8192 bench/scheduler-service.mjs [--backend memory|etcd]
//        [--hosts 10000] [--jobs 1000000] [--trials 50] [--concurrency 16]
//        [--commit-concurrency N] [--pin] [--rounds 1]
//
// --rounds N: the whole benchmark N times, each in a fresh process with the same flags
// (in one process, the garbage of the rounds before made the next ones slower); prints every
// round's raw and bulk figures and the median ratio. etcd's rate moves by a third between
// runs on a shared machine, and the ratio with it: one round proves little.
//
// --concurrency: the raw phase's transactions in flight; --commit-concurrency: the Scheduler's
// (its `commitConcurrency`; by default the Scheduler's own default).
//
// With FLOTILLA_ETCD_ENDPOINTS set, both phases use that etcd (under prefixes of their own)
// instead of starting one each; etcd's CPU share (etcdCores) is reported only for an etcd
// started here. nodeCores and etcdCores: CPU seconds per wall second of each phase;
// nodeCpuUsPerItem and etcdCpuUsPerItem: CPU microseconds per put (raw) or per job (bulk).
//
// --pin (etcd started here): etcd on the last CPU, this process on the others (taskset, every
// thread), in both phases: etcd with a core of its own, as on machines of its own in a
// cluster, rather than the two processes taking turns on the same cores.
//
// 0. Raw: the store's own rate for as many job-sized puts as the scheduler will place, in
//    transactions of 100 with --concurrency in flight, on a fresh store of the same backend,
//    in the same run: the scheduler's yardstick.
// 1. Bulk: formations for --jobs jobs over many apps are written; the time until the
//    scheduler has committed every placement (jobs/s, transactions, ratio to the raw rate).
// 2. Incremental, with those jobs placed (memory backend): time from the store write to the
//    committed plan for a scale of one app by +10, a host failure (its jobs re-placed), and a
//    new release (formation replaced), p50/p99 over --trials.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { ClusterKeys } from '@flotilla/cluster';
import { Scheduler } from '@flotilla/scheduler';
import { MemoryStore } from '@flotilla/store';
import { startEtcd } from '../scripts/etcd.mjs';
import { cpuMeter } from './lib/cpu.mjs';
import { percentile } from './lib/stats.mjs';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : args[i + 1];
};
const BACKEND = arg('backend', 'memory');
const HOSTS = Number(arg('hosts', 10_000));
const JOBS = Number(arg('jobs', 1_000_000));
const TRIALS = Number(arg('trials', 50));
const CONCURRENCY = Number(arg('concurrency', 16));
// The Scheduler's transactions in flight; by default its own default (commitConcurrency).
const COMMIT_CONCURRENCY =
  arg('commit-concurrency') === undefined ? undefined : Number(arg('commit-concurrency'));
const PER_APP = 100;
const PIN = args.includes('--pin');
const ROUNDS = Number(arg('rounds', 1));
if (!Number.isSafeInteger(ROUNDS) || ROUNDS < 1)
  throw new Error('--rounds must be a positive integer');
if (ROUNDS > 1) {
  const i = args.indexOf('--rounds');
  const childArgs = [...args.slice(0, i), ...args.slice(i + 2)];
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, import.meta.filename, ...childArgs],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    rounds.push(JSON.parse(out.toString()));
  }
  const ratios = rounds.map((x) => x.bulk.ratioToRaw);
  const { bench, backend, hosts, rawConcurrency, commitConcurrency, pinned } = rounds[0];
  console.log(
    JSON.stringify(
      {
        bench,
        backend,
        hosts,
        rawConcurrency,
        commitConcurrency,
        pinned,
        medianRatioToRaw: percentile(ratios, 50, 2),
        ratios,
        rounds: rounds.map(({ raw, bulk, incremental }) => ({ raw, bulk, incremental })),
      },
      null,
      2,
    ),
  );
  process.exit(0);
}
const CPUS = availableParallelism();
const ETCD_CPUS = String(CPUS - 1);
const NODE_CPUS = CPUS > 1 ? `0-${CPUS - 2}` : '0';
/** Sets the CPUs of every thread of `pid` (and of the threads it starts later). */
const pin = (pid, cpus) =>
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
if (PIN) {
  if (BACKEND !== 'etcd' || process.env.FLOTILLA_ETCD_ENDPOINTS !== undefined)
    throw new Error(
      '--pin pins an etcd this benchmark starts: use it with --backend etcd and no FLOTILLA_ETCD_ENDPOINTS',
    );
  pin(process.pid, NODE_CPUS);
}

const pct = (xs, p) => percentile(xs, p, 3);

/**
 * A fresh store of the backend under test: its own throwaway etcd (or the one
 * FLOTILLA_ETCD_ENDPOINTS names), or a new MemoryStore. `pid`: the etcd started here, whose
 * CPU time is reported.
 */
async function openStore(name) {
  if (BACKEND !== 'etcd')
    return { store: new MemoryStore({ historyLimit: 50_000 }), release: () => Promise.resolve() };
  const { EtcdStore } = await import('@flotilla/etcd');
  const fromEnv = process.env.FLOTILLA_ETCD_ENDPOINTS;
  // A quota large enough for a million job records.
  const etcd = fromEnv
    ? undefined
    : await startEtcd({
        extraArgs: [
          '--quota-backend-bytes',
          String(8 * 1024 ** 3),
          '--auto-compaction-retention',
          '1',
        ],
      });
  if (PIN && etcd !== undefined) pin(etcd.pid, ETCD_CPUS);
  const store = new EtcdStore({
    endpoints: etcd === undefined ? fromEnv.split(',') : [etcd.endpoint],
    prefix: `/bench-${name}-${process.pid}/`,
    requestTimeoutMs: 30_000,
  });
  return {
    store,
    pid: etcd?.pid,
    release: () => (etcd === undefined ? Promise.resolve() : etcd.stop()),
  };
}

// 0. Raw: as many job-sized values as the scheduler will place (what it writes per placement),
// 100 per transaction, --concurrency in flight, on a fresh store of its own: the yardstick.
const raw = await (async () => {
  const { store: rawStore, release, pid } = await openStore('raw');
  const sample = JSON.stringify({
    id: 'web.mjuohukl.c6f44c1',
    app: 'app-1234',
    release: 'v1',
    type: 'web',
    hostId: 'host-1234',
    index: 42,
    resources: { cpu: 100, memory: 256 },
    desired: 'run',
    createdAt: Date.now(),
  });
  const puts = Math.ceil(JOBS / PER_APP) * PER_APP;
  const cpu = cpuMeter(pid);
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < puts) {
        const from = next;
        next += 100;
        const ops = [];
        for (let i = from; i < Math.min(puts, from + 100); i++)
          ops.push({ op: 'put', key: `cluster/jobs/host-${i % HOSTS}/web.${i}`, value: sample });
        await rawStore.txn({ compare: [], success: ops });
      }
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  const cores = cpu.stop(seconds, puts);
  await rawStore.close();
  await release();
  return {
    puts,
    seconds: Math.round(seconds * 10) / 10,
    putsPerSecond: Math.round(puts / seconds),
    ...cores,
  };
})();

const { store, release: releaseEtcd, pid: etcdPid } = await openStore('scheduler');
const keys = new ClusterKeys();

// Hosts of 64 to 128 cores in four zones, heartbeats on one long lease.
const lease = await store.grant(600_000);
await lease.keepAlive();
const hosts = Array.from({ length: HOSTS }, (_, i) => ({
  id: `host-${i}`,
  addr: `127.0.0.1:${10000 + (i % 50000)}`,
  tags: { zone: 'abcd'[i % 4] },
  capacity: i % 2 === 0 ? { cpu: 64000, memory: 262144 } : { cpu: 128000, memory: 524288 },
  registeredAt: Date.now(),
}));
const heartbeat = JSON.stringify({ at: Date.now(), lease: lease.id });
for (let i = 0; i < hosts.length; i += 60) {
  const ops = [];
  for (const h of hosts.slice(i, i + 60)) {
    ops.push({ op: 'put', key: keys.host(h.id), value: JSON.stringify(h) });
    ops.push({ op: 'put', key: keys.heartbeat(h.id), value: heartbeat, lease: lease.id });
  }
  await store.txn({ compare: [], success: ops });
}

const scheduler = new Scheduler({
  store,
  strategy: 'spread',
  seed: 1,
  hostGraceMs: 600_000,
  ...(COMMIT_CONCURRENCY === undefined ? {} : { commitConcurrency: COMMIT_CONCURRENCY }),
});
let placed = 0;
let transactions = 0;
let conflicts = 0;
let cycles = 0;
let planMs = 0;
let waiter;
scheduler.on('plan', (r) => {
  placed += r.started;
  transactions += r.transactions;
  conflicts += r.conflicts;
  cycles++;
  planMs += r.planMs;
  waiter?.(r);
});
scheduler.on('error', (err) => console.error('scheduler error', err.message));
await scheduler.start();

// 1. Bulk.
const apps = Math.ceil(JOBS / PER_APP);
const sizes = [
  { cpu: 50, memory: 128 },
  { cpu: 100, memory: 256 },
  { cpu: 250, memory: 512 },
];
const bulkCpu = cpuMeter(etcdPid);
const t0 = performance.now();
for (let a = 0; a < apps; a += 100) {
  const ops = [];
  for (let k = a; k < Math.min(apps, a + 100); k++) {
    const f = {
      app: `app-${k}`,
      release: 'v1',
      processes: { web: { count: PER_APP, resources: sizes[k % sizes.length] } },
    };
    ops.push({ op: 'put', key: keys.formation(f.app, 'v1'), value: JSON.stringify(f) });
  }
  await store.txn({ compare: [], success: ops });
}
const target = apps * PER_APP;
while (placed < target) {
  await new Promise((resolve) => (waiter = resolve));
}
await scheduler.idle();
const bulkMs = performance.now() - t0;
const bulk = {
  jobs: placed,
  seconds: Math.round(bulkMs / 100) / 10,
  jobsPerSecond: Math.round(placed / (bulkMs / 1000)),
  ratioToRaw: Math.round((placed / (bulkMs / 1000) / raw.putsPerSecond) * 100) / 100,
  transactions,
  conflicts,
  cycles,
  planMs: Math.round(planMs),
  ...bulkCpu.stop(bulkMs / 1000, placed),
  heapMiB: Math.round(process.memoryUsage().heapUsed / 1048576),
};

// 2. Incremental.
// The first few trials of each kind warm the JIT and the indexes; they are reported apart.
const WARMUP = 3;

async function timed(write) {
  const done = new Promise((resolve) => (waiter = resolve));
  const t = performance.now();
  await write();
  const report = await done;
  const ms = performance.now() - t;
  await scheduler.idle();
  return { ms, report };
}

const incremental = {};
if (BACKEND === 'memory') {
  const scale = [];
  for (let i = 0; i < TRIALS + WARMUP; i++) {
    const app = `app-${(i * 7919) % apps}`;
    const f = {
      app,
      release: 'v1',
      processes: {
        web: { count: PER_APP + 10, resources: sizes[((i * 7919) % apps) % sizes.length] },
      },
    };
    const { ms, report } = await timed(() =>
      store.put(keys.formation(app, 'v1'), JSON.stringify(f)),
    );
    if (report.started !== 10) throw new Error(`scale started ${report.started}`);
    scale.push(ms);
  }
  const failure = [];
  for (let i = 0; i < Math.min(TRIALS, 20) + WARMUP; i++) {
    const h = hosts[(i * 131) % hosts.length];
    // The agent dies: its heartbeat vanishes.
    const { ms } = await timed(() => store.delete(keys.heartbeat(h.id)));
    failure.push(ms);
  }
  const release = [];
  for (let i = 0; i < TRIALS + WARMUP; i++) {
    const k = (i * 104729) % apps;
    const app = `app-${k}`;
    const f = {
      app,
      release: 'v2',
      processes: { web: { count: PER_APP, resources: sizes[k % sizes.length] } },
    };
    const { ms } = await timed(() =>
      store.txn({
        compare: [],
        success: [
          { op: 'put', key: keys.formation(app, 'v2'), value: JSON.stringify(f) },
          { op: 'delete', key: keys.formation(app, 'v1') },
        ],
      }),
    );
    release.push(ms);
  }
  const summary = (xs) => {
    const steady = xs.slice(WARMUP);
    return {
      p50: pct(steady, 50),
      p99: pct(steady, 99),
      max: pct(steady, 100),
      trials: steady.length,
      warmupMs: xs.slice(0, WARMUP).map((x) => Math.round(x * 100) / 100),
    };
  };
  incremental.scaleBy10Ms = summary(scale);
  incremental.hostFailureMs = { ...summary(failure), jobsPerHost: Math.round(placed / HOSTS) };
  incremental.newReleaseMs = { ...summary(release), jobsReplaced: PER_APP };
}

console.log(
  JSON.stringify(
    {
      bench: 'scheduler-service',
      backend: BACKEND,
      hosts: HOSTS,
      rawConcurrency: CONCURRENCY,
      commitConcurrency: COMMIT_CONCURRENCY ?? 'default',
      pinned: PIN ? { etcdCpus: ETCD_CPUS, nodeCpus: NODE_CPUS } : false,
      raw,
      bulk,
      incremental,
    },
    null,
    2,
  ),
);
await scheduler.close();
await lease.revoke().catch(() => undefined);
if (BACKEND === 'etcd') await store.deletePrefix('').catch(() => undefined);
await store.close();
await releaseEtcd();
