import { describe, expect, it } from 'vitest';
import { StoreError, StoreErrorCodes, type Store, type Txn, type TxnResult } from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { interceptStore, placesJobs } from '../../../test/support/intercept-store.js';
import { declare, setup, until, web } from '../../../test/support/scheduler-probes.js';
import { Scheduler } from './scheduler.js';

// Hostile probes of the Scheduler service: hand edits of its records, faults, and races of its
// own lifecycle.

/** A store whose next transaction matching `when` fails as if the engine dropped the call. */
function failing(store: Store, when: (txn: Txn) => boolean): Store & { failures: number } {
  const state = { failures: 0, armed: true };
  const view = interceptStore(store, {
    txn: (txn, next) => {
      if (!state.armed || !when(txn)) return next();
      state.armed = false;
      state.failures++;
      return Promise.reject(
        new StoreError(StoreErrorCodes.UNAVAILABLE, 'connection reset (injected)'),
      );
    },
  });
  return Object.defineProperty(view, 'failures', { get: () => state.failures }) as Store & {
    failures: number;
  };
}

describe('Scheduler probes: its own lifecycle', () => {
  it('closed while starting, it leaves neither a member key nor a place in the epoch', async () => {
    const { clock, memory, cluster } = await setup();
    const s = new Scheduler({ store: memory, clock, id: 'quitter' });
    const started = s.start().catch((err: unknown) => err);
    await s.close();
    await started;
    expect(s.state).toBe('stopped');
    expect(await memory.get(cluster.keys.scheduler('quitter'))).toBeUndefined();
    const epoch = await memory.get(cluster.keys.schedulerEpoch);
    expect(
      epoch === undefined ? [] : (JSON.parse(epoch.value) as { members: string[] }).members,
    ).not.toContain('quitter');
    // Another scheduler is not left waiting for a dead member's apps.
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await declare(cluster, web(2));
    await b.idle();
    expect(await cluster.jobs()).toHaveLength(2);
    await b.close();
    await cluster.close();
    await memory.close();
  });

  it('start() called twice resolves both only once it runs', async () => {
    const { clock, memory, cluster } = await setup();
    const s = new Scheduler({ store: memory, clock });
    const first = s.start();
    const second = s.start();
    const states: string[] = [];
    await second.then(() => states.push(s.state));
    await first.then(() => states.push(s.state));
    expect(states).toEqual(['running', 'running']);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: the epoch edited by hand', () => {
  it('keeps scheduling after the epoch record is deleted', async () => {
    const { clock, memory, cluster } = await setup();
    const s = new Scheduler({ store: memory, clock, id: 's1' });
    await s.start();
    await memory.delete(cluster.keys.schedulerEpoch);
    await s.idle();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2, 30_000);
    await s.idle();
    expect(await cluster.jobs()).toHaveLength(2);
    expect(s.stats.members).toEqual(['s1']);
    await s.close();
    await cluster.close();
    await memory.close();
  });

  it('keeps scheduling, and reports it, after the epoch record is overwritten with garbage', async () => {
    const { clock, memory, cluster } = await setup();
    const s = new Scheduler({ store: memory, clock, id: 's1' });
    const invalid: string[] = [];
    s.on('invalid-record', (key) => invalid.push(key));
    let conflicts = 0;
    s.on('plan', (r) => (conflicts += r.conflicts));
    await s.start();
    await memory.put(cluster.keys.schedulerEpoch, '{"members":"everyone"}');
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2, 30_000);
    await s.idle();
    expect(invalid).toContain(cluster.keys.schedulerEpoch);
    expect(await cluster.jobs()).toHaveLength(2);
    expect(conflicts).toBeLessThan(10); // no hot loop of refused commits
    await s.close();
    await cluster.close();
    await memory.close();
  });

  it('two schedulers both come back into a deleted epoch and share the apps', async () => {
    const { clock, memory, cluster } = await setup();
    const a = new Scheduler({ store: memory, clock, id: 'a' });
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await a.start();
    await b.start();
    await memory.delete(cluster.keys.schedulerEpoch);
    for (const app of ['p', 'q', 'r', 's', 't', 'u']) await declare(cluster, web(2, app));
    await until(clock, async () => (await cluster.jobs()).length >= 12, 30_000);
    await Promise.all([a.idle(), b.idle()]);
    expect(await cluster.jobs()).toHaveLength(12);
    expect(a.stats.members).toEqual(['a', 'b']);
    expect(b.stats.members).toEqual(['a', 'b']);
    await a.close();
    await b.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: faults', () => {
  it('a partitioned scheduler dropped from the epoch joins again when it comes back', async () => {
    const { clock, memory, cluster } = await setup();
    const view = new PartitionableStore(memory, { clock });
    const a = new Scheduler({ store: view, clock, id: 'a', memberTtlMs: 1000 });
    const b = new Scheduler({ store: memory, clock, id: 'b', memberTtlMs: 1000 });
    await a.start();
    await b.start();
    view.partitioned = true;
    await until(clock, async () => b.stats.members.length === 1, 10_000);
    expect(b.stats.members).toEqual(['b']);
    view.partitioned = false;
    await until(
      clock,
      async () => a.stats.members.length === 2 && b.stats.members.length === 2,
      30_000,
    );
    expect(a.stats.members).toEqual(['a', 'b']);
    expect(b.stats.members).toEqual(['a', 'b']);
    for (const app of ['p', 'q', 'r', 's', 't', 'u']) await declare(cluster, web(2, app));
    await until(clock, async () => (await cluster.jobs()).length >= 12, 30_000);
    await Promise.all([a.idle(), b.idle()]);
    expect(await cluster.jobs()).toHaveLength(12);
    await a.close();
    await b.close();
    await cluster.close();
    await memory.close();
  });

  it('collects an ended job even when the store drops the first delete', async () => {
    const { clock, memory, cluster } = await setup();
    const store = failing(memory, (t) =>
      t.success.some((op) => op.op === 'delete' && op.key.startsWith(cluster.keys.jobStatuses)),
    );
    const s = new Scheduler({ store, clock });
    const errors: unknown[] = [];
    s.on('error', (e) => errors.push(e));
    await s.start();
    await declare(cluster, web(1));
    await s.idle();
    const [job] = await cluster.jobs();
    // The agent reports the job down (it exited); the scheduler's delete fails once.
    await cluster.reportJob('h0', job?.record.id as string, { state: 'down', exitStatus: 1 });
    await s.idle();
    await until(
      clock,
      async () => !(await cluster.jobs()).some((j) => j.record.id === job?.record.id),
      30_000,
    );
    await s.idle();
    expect(store.failures).toBe(1);
    expect(errors).toHaveLength(1);
    const jobs = await cluster.jobs();
    expect(jobs.map((j) => j.record.id)).not.toContain(job?.record.id);
    expect((await memory.list(cluster.keys.jobStatuses)).kvs).toHaveLength(0);
    expect(jobs.filter((j) => j.state === 'pending')).toHaveLength(1); // its replacement
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: a commit failing in the middle', () => {
  it('plans again only after the transactions still in flight have landed: no job placed twice', async () => {
    const { clock, memory, cluster } = await setup(100);
    // The first transaction placing jobs fails at once; the others take a little real time.
    const jobsPrefix = cluster.keys.jobs;
    let failures = 0;
    const slow = interceptStore(memory, {
      txn: async (txn, next) => {
        if (placesJobs(txn, jobsPrefix) && failures++ === 0)
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'connection reset (injected)');
        await new Promise((r) => setTimeout(r, 20));
        return next();
      },
    });
    const s = new Scheduler({ store: slow, clock, hostGraceMs: 600_000 });
    const failed = new Promise<void>((resolve) => s.once('error', () => resolve()));
    await s.start();
    await declare(cluster, web(100));
    await failed;
    // The commit's retry delay runs out while the other transactions are still in flight.
    await clock.advance(1000);
    await until(clock, async () => (await cluster.jobs()).length >= 100, 10_000);
    await s.idle();
    // Without agents, a job placed twice stays (asked to stop) beside the one kept.
    expect(await cluster.jobs()).toHaveLength(100);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: a commit that lands after its barrier', () => {
  it('a commit abandoned without an answer that the store applies only after the barrier fails: no job placed twice', async () => {
    const { clock, memory, cluster } = await setup(20);
    const jobsPrefix = cluster.keys.jobs;
    const memberPrefix = cluster.keys.schedulers;
    // The first transaction placing jobs gets no answer (as a timeout): it is held back and
    // applied only once the scheduler has written its barrier, as etcd, which serves requests
    // concurrently, may do with a request the client gave up on.
    let held: (() => Promise<TxnResult>) | undefined;
    let landed: Promise<TxnResult> | undefined;
    const view = interceptStore(memory, {
      txn: async (txn, next) => {
        if (held === undefined && landed === undefined && placesJobs(txn, jobsPrefix)) {
          held = next;
          throw new StoreError(
            StoreErrorCodes.UNAVAILABLE,
            'etcd did not answer in time (injected)',
          );
        }
        const res = await next();
        const barrier = txn.success.some(
          (op) => op.op === 'put' && op.key.startsWith(memberPrefix),
        );
        if (barrier && held !== undefined) {
          landed = held();
          held = undefined;
          await landed;
        }
        return res;
      },
    });
    const s = new Scheduler({ store: view, clock, hostGraceMs: 600_000 });
    const failed = new Promise<void>((resolve) => s.once('error', () => resolve()));
    await s.start();
    await declare(cluster, web(100));
    await failed;
    await until(clock, async () => landed !== undefined && (await cluster.jobs()).length >= 100);
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs.filter((j) => j.record.desired === 'stop')).toEqual([]);
    expect(jobs).toHaveLength(100);
    expect(new Set(jobs.map((j) => j.record.index)).size).toBe(100);
    // The late commit was refused by its fence (the member key it compares was rewritten).
    expect((await landed)?.succeeded).toBe(false);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: a barrier whose answer is lost', () => {
  it('learns its member key revision from the watch and places every job', async () => {
    const { clock, memory, cluster } = await setup(20);
    const jobsPrefix = cluster.keys.jobs;
    const memberPrefix = cluster.keys.schedulers;
    let failedCommit = false;
    let lostBarrier = false;
    const view = interceptStore(memory, {
      txn: async (txn, next) => {
        if (!failedCommit && placesJobs(txn, jobsPrefix)) {
          failedCommit = true; // fails without landing: the scheduler writes a barrier
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'connection reset (injected)');
        }
        const barrier = txn.success.some(
          (op) => op.op === 'put' && op.key.startsWith(memberPrefix),
        );
        if (failedCommit && !lostBarrier && barrier) {
          lostBarrier = true;
          await next(); // the barrier lands, its answer is lost
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'connection reset (injected)');
        }
        return next();
      },
    });
    const s = new Scheduler({ store: view, clock, hostGraceMs: 600_000 });
    await s.start();
    await declare(cluster, web(100));
    await until(clock, async () => lostBarrier && (await cluster.jobs()).length >= 100);
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(100);
    expect(jobs.filter((j) => j.record.desired === 'stop')).toEqual([]);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: closed while the store hangs', () => {
  it('close() does not wait for a barrier the store never answers (etcd frozen mid-call)', async () => {
    const { clock, memory, cluster } = await setup();
    let failedCommit = false;
    let barrierSent!: () => void;
    const barrier = new Promise<void>((resolve) => (barrierSent = resolve));
    const view = interceptStore(memory, {
      txn: async (txn, next, options) => {
        if (!failedCommit && placesJobs(txn, cluster.keys.jobs)) {
          failedCommit = true;
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'connection reset (injected)');
        }
        const isBarrier = txn.success.some(
          (op) => op.op === 'put' && op.key.startsWith(cluster.keys.schedulers),
        );
        if (failedCommit && isBarrier) {
          barrierSent();
          // Never answered, as by a frozen etcd: only the caller's signal ends the call.
          return new Promise<never>((_resolve, reject) => {
            const signal = options?.signal;
            signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
          });
        }
        return next();
      },
    });
    const s = new Scheduler({ store: view, clock, hostGraceMs: 600_000 });
    s.on('error', () => undefined);
    await s.start();
    await declare(cluster, web(2));
    // The retry delay after the failed commit runs on the clock; then the barrier goes out.
    for (let i = 0; i < 40 && !(await Promise.race([barrier.then(() => true), false])); i++)
      await clock.advance(50);
    await barrier;
    await s.close(); // hung until the test timed out before the barrier took the close signal
    expect(s.state).toBe('stopped');
    await cluster.close();
    await memory.close();
  });

  it('close() does not wait for a collection the store never answers', async () => {
    const { clock, memory, cluster } = await setup();
    let deleteSent!: () => void;
    const deleting = new Promise<void>((resolve) => (deleteSent = resolve));
    const view = interceptStore(memory, {
      txn: async (txn, next, options) => {
        if (!txn.success.some((op) => op.op === 'delete')) return next();
        deleteSent();
        return new Promise<never>((_resolve, reject) => {
          const signal = options?.signal;
          signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        });
      },
    });
    const s = new Scheduler({ store: view, clock, hostGraceMs: 600_000 });
    await s.start();
    await declare(cluster, web(1));
    await s.idle();
    const [job] = await cluster.jobs();
    await cluster.setFormation(web(0));
    await s.idle();
    // The agent reports it down: the scheduler collects its records, and etcd never answers.
    await cluster.reportJob(job?.record.hostId as string, job?.record.id as string, {
      state: 'down',
      exitStatus: 0,
    });
    await deleting;
    await s.close(); // hung while the collector's delete waited for an answer
    expect(s.state).toBe('stopped');
    await cluster.close();
    await memory.close();
  });

  it('close() does not wait for a commit the store never answers', async () => {
    const { clock, memory, cluster } = await setup();
    let commitSent!: () => void;
    const commit = new Promise<void>((resolve) => (commitSent = resolve));
    const view = interceptStore(memory, {
      txn: async (txn, next, options) => {
        if (!placesJobs(txn, cluster.keys.jobs)) return next();
        commitSent();
        return new Promise<never>((_resolve, reject) => {
          const signal = options?.signal;
          signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        });
      },
    });
    const s = new Scheduler({ store: view, clock, hostGraceMs: 600_000 });
    await s.start();
    await declare(cluster, web(2));
    await commit;
    await s.close(); // hung until the test timed out before commits took the close signal
    expect(s.state).toBe('stopped');
    expect(await cluster.jobs()).toEqual([]);
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: orphans', () => {
  it('deletes a job status whose job does not exist, and keeps one whose job record is unreadable', async () => {
    const { clock, memory, cluster } = await setup();
    const k = cluster.keys;
    const status = JSON.stringify({ state: 'up', updatedAt: 0 });
    await memory.put(k.jobStatus('h0', 'before.1'), status); // found at start
    await memory.put(k.job('h0', 'garbled.1'), '{"id":"garbled.1"}');
    await memory.put(k.jobStatus('h0', 'garbled.1'), status);
    const s = new Scheduler({ store: memory, clock });
    await s.start();
    await memory.put(k.jobStatus('h0', 'after.1'), status); // appears while it runs
    await until(clock, async () => (await memory.list(k.jobStatuses)).kvs.length <= 1, 10_000);
    await s.idle();
    expect((await memory.list(k.jobStatuses)).kvs.map((kv) => kv.key)).toEqual([
      k.jobStatus('h0', 'garbled.1'),
    ]);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: jobs that end unexpectedly', () => {
  it('replaces a job its agent reports down while it is still wanted, under the same number', async () => {
    const { clock, memory, cluster } = await setup(2);
    const s = new Scheduler({ store: memory, clock });
    await s.start();
    await declare(cluster, web(2));
    await s.idle();
    const [victim] = await cluster.jobs();
    const id = victim?.record.id as string;
    await cluster.reportJob(victim?.record.hostId as string, id, { state: 'down', exitStatus: 0 });
    await until(clock, async () => !(await cluster.jobs()).some((j) => j.record.id === id));
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(2);
    expect(jobs.map((j) => j.record.index).sort()).toEqual([1, 2]);
    await s.close();
    await cluster.close();
    await memory.close();
  });

  it('a crashed job held in backoff whose host dies is replaced at once, not after the backoff', async () => {
    const { clock, memory, cluster } = await setup(2);
    const s = new Scheduler({ store: memory, clock, restartBackoffMs: [600_000] });
    await s.start();
    await declare(cluster, web(1));
    await s.idle();
    const [victim] = await cluster.jobs();
    const host = victim?.record.hostId as string;
    await cluster.reportJob(host, victim?.record.id as string, { state: 'crashed' });
    await s.idle();
    expect(s.stats.heldForBackoff).toBe(1);
    await memory.delete(cluster.keys.heartbeat(host)); // the host dies
    await until(
      clock,
      async () => (await cluster.jobs()).some((j) => j.record.hostId !== host),
      5000,
    );
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs.map((j) => j.record.hostId)).toEqual([host === 'h0' ? 'h1' : 'h0']);
    expect(s.stats.heldForBackoff).toBe(0);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: a commit that lands but whose answer is lost', () => {
  it('a sole scheduler does not place again what an unanswered commit placed', async () => {
    const { clock, memory, cluster } = await setup(4);
    const jobsPrefix = cluster.keys.jobs;
    let lost = 0;
    // The first placing transaction is applied, then its answer is lost (an etcd timeout),
    // and the watch is slow to tell of it: the retry must not place the jobs a second time.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const lossy = interceptStore(memory, {
      watchEvent: async (ev) => {
        if (ev.kv.key.startsWith(jobsPrefix)) await held;
      },
      txn: async (txn, next) => {
        const res = await next();
        if (placesJobs(txn, jobsPrefix) && lost++ === 0)
          throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'deadline exceeded (injected)');
        return res;
      },
    });
    const s = new Scheduler({ store: lossy, clock, hostGraceMs: 600_000 });
    const failed = new Promise<void>((resolve) => s.once('error', () => resolve()));
    await s.start();
    await declare(cluster, web(8));
    await failed;
    // The retry comes while the watch still holds back the news of the first commit.
    for (let i = 0; i < 8; i++) await clock.advance(250);
    release();
    await until(clock, async () => (await cluster.jobs()).length >= 8, 10_000);
    await s.idle();
    // Without agents, a job placed twice would stay (asked to stop) beside the one kept.
    const jobs = await cluster.jobs();
    expect(jobs.filter((j) => j.record.desired === 'stop')).toEqual([]);
    expect(jobs).toHaveLength(8);
    expect(jobs.map((j) => j.record.index).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: taking over from a dead scheduler', () => {
  it('removes a dead member from the epoch even when the first attempt fails', async () => {
    const { clock, memory, cluster } = await setup(1);
    const epochKey = cluster.keys.schedulerEpoch;
    // A's first write of the epoch after B died is lost.
    let armed = false;
    const aStore = failing(
      memory,
      (txn) => armed && txn.success.some((op) => 'key' in op && op.key === epochKey),
    );
    const bView = new PartitionableStore(memory, { clock });
    const a = new Scheduler({ store: aStore, clock, id: 'a', memberTtlMs: 1000 });
    const b = new Scheduler({ store: bView, clock, id: 'b', memberTtlMs: 1000 });
    await a.start();
    await b.start();
    await until(clock, () => Promise.resolve(a.stats.members.length === 2));
    expect(a.stats.members).toEqual(['a', 'b']);
    armed = true;
    bView.partitioned = true; // B dies: its lease runs out
    await until(clock, () => Promise.resolve(a.stats.members.length === 1), 10_000);
    expect(aStore.failures).toBe(1);
    expect(a.stats.members).toEqual(['a']);
    for (const app of ['p', 'q', 'r']) await declare(cluster, web(1, app));
    await a.idle();
    expect(await cluster.jobs()).toHaveLength(3);
    await a.close();
    await b.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: close during a retry', () => {
  it('closes promptly while every commit fails and it is backing off or waiting on its barrier', async () => {
    const { clock, memory, cluster } = await setup(2);
    let down = false;
    const flaky = interceptStore(memory, {
      txn: (txn, next) =>
        down
          ? Promise.reject(new StoreError(StoreErrorCodes.UNAVAILABLE, 'etcd down (injected)'))
          : next(),
    });
    const s = new Scheduler({ store: flaky, clock, hostGraceMs: 600_000 });
    await s.start();
    const failed = new Promise<void>((resolve) => s.once('error', () => resolve()));
    down = true;
    await declare(cluster, web(4));
    await failed;
    await clock.advance(50); // into the barrier, which fails too, then the next backoff
    await s.close(); // must not wait for the store to come back
    expect(s.state).toBe('stopped');
    expect(await cluster.jobs()).toEqual([]);
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: the watch echo of a commit arriving before its answer', () => {
  it('counts each job once in the host allocation it writes next', async () => {
    const { clock, memory, cluster } = await setup();
    const barrierKey = `${cluster.keys.prefix}zz-probe-barrier`;
    let passed: ((key: string) => void) | undefined;
    // Every commit placing jobs answers only once the scheduler's watch has applied its echo:
    // a write made after it has been pulled by the scheduler's watch loop.
    const store = interceptStore(memory, {
      txn: async (txn, next) => {
        const res = await next();
        if (!res.succeeded || !placesJobs(txn, cluster.keys.jobs)) return res;
        const seen = new Promise<string>((resolve) => (passed = resolve));
        await memory.put(barrierKey, String(res.revision));
        expect(await seen).toBe(String(res.revision));
        return res;
      },
      watchEvent: (ev) => {
        if (ev.kv.key === barrierKey) passed?.(ev.kv.value);
      },
    });
    // Job records watched: a sole scheduler leaving them out gets no echo (see below).
    const s = new Scheduler({ store, clock, id: 'echo', watchOwnJobs: false });
    await s.start();
    await declare(cluster, web(3));
    await until(clock, async () => (await cluster.jobs()).length >= 3);
    await s.idle();
    await declare(cluster, web(4));
    await until(clock, async () => (await cluster.jobs()).length >= 4);
    await s.idle();
    const alloc = await memory.get(cluster.keys.alloc('h0'));
    expect(JSON.parse(alloc?.value ?? '{}')).toMatchObject({ jobs: 4, cpu: 400, memory: 400 });
    expect(s.stats.jobs).toBe(4);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler probes: job records written by someone else', () => {
  it('replaces a job whose record an operator deletes by hand right after it was placed', async () => {
    const { clock, memory, cluster } = await setup();
    const s = new Scheduler({ store: memory, clock, id: 'owner' });
    await s.start();
    await declare(cluster, web(2));
    await until(clock, async () => (await cluster.jobs()).length >= 2);
    await s.idle();
    const [victim] = await cluster.jobs();
    await memory.delete(cluster.keys.job(victim?.record.hostId ?? '', victim?.record.id ?? ''));
    await until(clock, async () => {
      const jobs = await cluster.jobs();
      return jobs.length >= 2 && !jobs.some((j) => j.record.id === victim?.record.id);
    });
    await s.idle();
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(2);
    expect(jobs.map((j) => j.record.id)).not.toContain(victim?.record.id);
    expect(jobs.map((j) => j.record.index).sort()).toEqual([1, 2]);
    expect(s.stats.jobs).toBe(2);
    await s.close();
    await cluster.close();
    await memory.close();
  });
});

describe('Scheduler: a sole scheduler leaves its own job records out of its watch', () => {
  it('is sent none of the job records it places; with watchOwnJobs false, it is sent them', async () => {
    for (const watchOwnJobs of [true, false]) {
      const { clock, memory, cluster } = await setup();
      let jobPuts = 0;
      const store = interceptStore(memory, {
        watchEvent: (ev) => {
          if (ev.type === 'put' && ev.kv.key.startsWith(cluster.keys.jobs)) jobPuts++;
        },
      });
      const s = new Scheduler({ store, clock, id: 'sole', watchOwnJobs });
      await s.start();
      await declare(cluster, web(20));
      await until(clock, async () => (await cluster.jobs()).length >= 20);
      await s.idle();
      expect(s.stats.jobs).toBe(20);
      if (watchOwnJobs) expect(jobPuts).toBe(0);
      else expect(jobPuts).toBeGreaterThanOrEqual(20);
      await s.close();
      await cluster.close();
      await memory.close();
    }
  });

  it('a second scheduler joining: the first watches job records again, and no host is over-committed', async () => {
    const { clock, memory, cluster } = await setup(0);
    // Room for exactly ten jobs of 100 millicores.
    await cluster.registerHost(
      { id: 'h0', addr: 'test://h0', capacity: { cpu: 1000, memory: 65_536 } },
      { ttlMs: 600_000 },
    );
    const a = new Scheduler({ store: memory, clock, id: 'a' });
    await a.start();
    await declare(cluster, web(4, 'one'));
    await until(clock, async () => (await cluster.jobs()).length >= 4);
    await a.idle();
    const b = new Scheduler({ store: memory, clock, id: 'b' });
    await b.start();
    await until(clock, async () => a.stats.members.length === 2);
    // Whichever of them owns each app, each must count the other's jobs on h0.
    for (const app of ['two', 'three', 'four', 'five']) await declare(cluster, web(3, app));
    await until(clock, async () => (await cluster.jobs()).length >= 10, 20_000);
    await clock.advance(5_000);
    await Promise.all([a.idle(), b.idle()]);
    const jobs = await cluster.jobs();
    expect(jobs).toHaveLength(10);
    const alloc = JSON.parse((await memory.get(cluster.keys.alloc('h0')))?.value ?? '{}') as {
      cpu?: number;
    };
    expect(alloc.cpu).toBe(1000);
    // Both views hold every job, whoever placed it.
    expect(a.stats.jobs).toBe(10);
    expect(b.stats.jobs).toBe(10);
    // b leaves: a is alone again, leaves job records out of its watch, and still sees b's jobs
    // deleted by hand (a replacement is placed, within the capacity).
    await b.close();
    await until(clock, async () => a.stats.members.length === 1, 30_000);
    const [victim] = (await cluster.jobs()).filter((j) => j.record.app !== 'one');
    await memory.delete(cluster.keys.job('h0', victim?.record.id ?? ''));
    await until(clock, async () => {
      const now = await cluster.jobs();
      return now.length === 10 && !now.some((j) => j.record.id === victim?.record.id);
    });
    await a.idle();
    expect(await cluster.jobs()).toHaveLength(10);
    expect(a.stats.jobs).toBe(10);
    await a.close();
    await cluster.close();
    await memory.close();
  });
});
