#!/usr/bin/env node
// Discovery: registrations per second, and how fast watchers see instances go.
// Prints one JSON object.
//
//   node bench/discovery.mjs [--trials 20]
//
// - registrations/s on MemoryStore and etcd (register + keepAlive, ready)
// - kill_to_down_ms: a child process registers against etcd with TTL 2000 ms and is SIGKILLed;
//   time from its exit to the watcher's `down` (p50/p99 over the trials)
// - close_to_down_ms: time from reg.close() to the watcher's `down`, on etcd
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Discovery } from '@flotilla/discovery';
import { EtcdStore } from '@flotilla/etcd';
import { MemoryStore } from '@flotilla/store';
import { acquireEtcd } from '../scripts/etcd.mjs';
import { percentile } from './lib/stats.mjs';

const args = process.argv.slice(2);
const trialsArg = args.indexOf('--trials');
const TRIALS = trialsArg === -1 ? 20 : Number(args[trialsArg + 1]);
const fixture = fileURLToPath(
  new URL('../packages/discovery/test-fixtures/register-child.mjs', import.meta.url),
);

const pct = (xs, p) => percentile(xs, p, 1);

async function registrationsPerSecond(store, n) {
  const discovery = new Discovery({ store });
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++;
        await discovery.register({
          service: 'bench',
          addr: `127.0.0.1:${1 + (i % 60000)}`,
          id: `i${i}`,
          ttlMs: 10_000,
          ready: true,
        });
      }
    }),
  );
  const rate = n / ((performance.now() - t0) / 1000);
  await discovery.close();
  return Math.round(rate);
}

const { endpoints, release } = await acquireEtcd();

const memory = new MemoryStore();
const memoryRate = await registrationsPerSecond(memory, 5000);
await memory.close();

const prefix = `/bench-discovery-${process.pid}/`;
const store = new EtcdStore({ endpoints, prefix });
const etcdRate = await registrationsPerSecond(store, 1000);

const discovery = new Discovery({ store });
const controller = new AbortController();
const events = discovery.watch('demo-web', { signal: controller.signal })[Symbol.asyncIterator]();
await events.next(); // snapshot
const nextOf = async (kind, id) => {
  for (;;) {
    const { value } = await events.next();
    if (value.kind === kind && value.instance.id === id) return;
  }
};

const killToDown = [];
for (let t = 0; t < TRIALS; t++) {
  const id = `victim-${t}`;
  const child = spawn(
    process.execPath,
    [fixture, endpoints.join(','), prefix, 'demo-web', id, '2000'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  if (line !== `registered ${id}`) throw new Error(`child said ${line}`);
  await nextOf('up', id);
  child.kill('SIGKILL');
  await once(child, 'exit');
  const t0 = performance.now();
  await nextOf('down', id);
  killToDown.push(performance.now() - t0);
}

const closeToDown = [];
for (let t = 0; t < TRIALS; t++) {
  const reg = await discovery.register({
    service: 'demo-web',
    addr: '127.0.0.1:5003',
    id: `graceful-${t}`,
    ttlMs: 10_000,
  });
  await nextOf('up', reg.id);
  const t0 = performance.now();
  await reg.close();
  await nextOf('down', reg.id);
  closeToDown.push(performance.now() - t0);
}

controller.abort();
await discovery.close();
await store.deletePrefix('');
await store.close();
await release();

console.log(
  JSON.stringify(
    {
      bench: 'discovery',
      registrations_per_s: { memory: memoryRate, etcd: etcdRate },
      kill_to_down_ms_ttl_2000: {
        p50: pct(killToDown, 50),
        p99: pct(killToDown, 99),
        max: Math.round(Math.max(...killToDown)),
        trials: TRIALS,
      },
      close_to_down_ms: {
        p50: pct(closeToDown, 50),
        p99: pct(closeToDown, 99),
        trials: TRIALS,
      },
    },
    null,
    2,
  ),
);
