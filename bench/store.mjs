#!/usr/bin/env node
// Store throughput and watch latency for each backend. Prints one JSON object.
//
//   node bench/store.mjs [memory,sqlite,etcd] [--ops N]
//
// etcd: uses FLOTILLA_ETCD_ENDPOINTS, or starts a throwaway etcd through scripts/etcd.mjs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '@flotilla/store';
import { acquireEtcd } from '../scripts/etcd.mjs';
import { percentile } from './lib/stats.mjs';

const args = process.argv.slice(2);
const backends = (args.find((a) => !a.startsWith('--')) ?? 'memory,sqlite,etcd').split(',');
const opsArg = args.indexOf('--ops');
const N = opsArg === -1 ? 2000 : Number(args[opsArg + 1]);

async function timeOps(n, fn) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return n / ((performance.now() - t0) / 1000);
}

async function timeConcurrent(n, width, fn) {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

async function measure(name, store) {
  const value = 'x'.repeat(100);
  const putSeq = await timeOps(N, (i) => store.put(`bench/put/${i}`, value));
  const putConc = await timeConcurrent(N, 32, (i) => store.put(`bench/putc/${i}`, value));
  const getSeq = await timeOps(N, (i) => store.get(`bench/put/${i % N}`));
  const txnSeq = await timeOps(N, async (i) => {
    const kv = await store.get('bench/cas');
    await store.txn({
      compare: [{ key: 'bench/cas', target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }],
      success: [{ op: 'put', key: 'bench/cas', value: String(i) }],
    });
  });
  // Batched placements, as a scheduler commits them: 100 puts per txn.
  const batches = Math.max(1, Math.floor(N / 100));
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    await store.txn({
      compare: [],
      success: Array.from({ length: 100 }, (_, i) => ({
        op: 'put',
        key: `bench/batch/${b}/${i}`,
        value,
      })),
    });
  }
  const batchedPuts = (batches * 100) / ((performance.now() - t0) / 1000);

  // Watch delivery latency: time from put() call to the event arriving at a watcher.
  const controller = new AbortController();
  const pending = new Map();
  const latencies = [];
  const watching = (async () => {
    for await (const ev of store.watch('bench/w/', { signal: controller.signal })) {
      const t = pending.get(ev.kv.key);
      if (t !== undefined) {
        latencies.push(performance.now() - t.start);
        pending.delete(ev.kv.key);
        t.resolve();
      }
    }
  })();
  await store.put('bench/w/warmup', '');
  const n = Math.min(N, 1000);
  for (let i = 0; i < n; i++) {
    const key = `bench/w/${i}`;
    const seen = new Promise((resolve) => pending.set(key, { start: performance.now(), resolve }));
    await store.put(key, value);
    await seen;
  }
  controller.abort();
  await watching;
  return {
    backend: name,
    ops: N,
    put_ops_s: Math.round(putSeq),
    put_32_concurrent_ops_s: Math.round(putConc),
    get_ops_s: Math.round(getSeq),
    cas_txn_ops_s: Math.round(txnSeq),
    batched_puts_per_s_100_per_txn: Math.round(batchedPuts),
    watch_latency_ms: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      n: latencies.length,
    },
  };
}

const results = [];
for (const backend of backends) {
  if (backend === 'memory') {
    const store = new MemoryStore();
    results.push(await measure('memory', store));
    await store.close();
  } else if (backend === 'sqlite') {
    const { SqliteStore } = await import('@flotilla/sqlite');
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-'));
    for (const synchronous of ['full', 'normal']) {
      const store = new SqliteStore({ path: join(dir, `${synchronous}.db`), synchronous });
      results.push({ ...(await measure(`sqlite (synchronous=${synchronous})`, store)) });
      await store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  } else if (backend === 'etcd') {
    const { EtcdStore } = await import('@flotilla/etcd');
    const { endpoints, release } = await acquireEtcd();
    const store = new EtcdStore({ endpoints, prefix: `/bench-${process.pid}/` });
    results.push(await measure('etcd', store));
    await store.deletePrefix('');
    await store.close();
    await release();
  }
}
console.log(JSON.stringify({ bench: 'store', node: process.version, results }, null, 2));
