// The ClusterState suite, run here on MemoryStore and by cluster-state.integration.test.ts on
// a real etcd: both backends must pass the very same tests. Tests that need a manual clock
// (lease expiry) run on MemoryStore only, at the end of this file.
import { pathToFileURL } from 'node:url';
import { ManualClock } from '@flotilla/core';
import {
  MemoryStore,
  StoreError,
  StoreErrorCodes,
  type CallOptions,
  type Store,
} from '@flotilla/store';
import { PartitionableStore } from '@flotilla/store/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState, type AssignedItem } from './cluster-state.js';
import { ClusterError } from './errors.js';
import { ClusterKeys } from './keys.js';
import {
  validateJobRecord,
  type Formation,
  type JobRecord,
  type ReleaseRecord,
} from './records.js';

const keys = new ClusterKeys();

const release = (app: string, id: string, extra: Partial<ReleaseRecord> = {}): ReleaseRecord => ({
  app,
  release: id,
  artifact: {
    type: 'slug',
    url: `https://slugs.example/${app}/${id}.tgz`,
    sha256: 'e'.repeat(64),
    size: 10,
  },
  config: { LOG_LEVEL: 'info' },
  processes: { web: { command: 'node server.js' }, worker: { command: 'node worker.js' } },
  createdAt: 1_700_000_000_000,
  ...extra,
});

const formation = (app: string, id: string, processes: Formation['processes']): Formation => ({
  app,
  release: id,
  processes,
});

const small = { cpu: 250, memory: 256 };

const jobRecord = (hostId: string, id: string, extra: Partial<JobRecord> = {}): JobRecord => ({
  id,
  app: 'demo',
  release: 'v1',
  type: 'web',
  hostId,
  index: 1,
  resources: small,
  desired: 'run',
  createdAt: 1_700_000_000_000,
  ...extra,
});

/** Writes a job record as the scheduler does. */
async function placeJob(store: Store, job: JobRecord): Promise<void> {
  await store.put(keys.job(job.hostId, job.id), JSON.stringify(validateJobRecord(job)));
}

/** Changes a job's desired state as the scheduler does: compare-and-set on its modRevision. */
async function setDesired(
  store: Store,
  hostId: string,
  jobId: string,
  desired: JobRecord['desired'],
): Promise<number> {
  const key = keys.job(hostId, jobId);
  for (let attempts = 1; ; attempts++) {
    const kv = await store.get(key);
    if (kv === undefined) throw new Error(`${key} is gone`);
    const job = JSON.parse(kv.value) as JobRecord;
    const next: Record<string, unknown> =
      desired === 'stop'
        ? { ...job, desired, stopReason: 'scaled-down' }
        : { ...job, desired, stopReason: undefined };
    const res = await store.txn({
      compare: [{ key, target: 'modRevision', op: '==', value: kv.modRevision }],
      success: [{ op: 'put', key, value: JSON.stringify(validateJobRecord(next)) }],
    });
    if (res.succeeded) return attempts;
  }
}

/** The next item of a watch, failing (not hanging) when none comes within `timeoutMs`. */
async function next<T>(it: AsyncIterator<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const res = await Promise.race([it.next(), timeout]);
    if (res.done === true) throw new Error(`the watch ended before ${what}`);
    return res.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with `promise`, or rejects saying what did not happen within `timeoutMs`. */
async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: not within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A short view of an assigned item, for comparing sequences. */
function brief(item: AssignedItem): unknown {
  const job = (j: {
    record: JobRecord;
    release: ReleaseRecord | undefined;
    releaseError?: ClusterError;
  }) => ({
    id: j.record.id,
    desired: j.record.desired,
    release: j.release?.release,
    releaseError: j.releaseError?.code,
  });
  switch (item.type) {
    case 'snapshot':
      return { type: 'snapshot', reset: item.reset, jobs: item.jobs.map(job) };
    case 'assigned':
      return { type: 'assigned', job: job(item.job) };
    case 'removed':
      return item;
    case 'invalid':
      return { type: 'invalid', key: item.key, code: item.error.code };
  }
}

/**
 * The behaviour every backend must show. `create` gives a fresh, empty store for one test; the
 * suite closes it afterwards.
 */
export function runClusterStateSuite(name: string, create: () => Store | Promise<Store>): void {
  describe(`ClusterState on ${name}`, () => {
    let store: Store;
    let cluster: ClusterState;
    const opened: ClusterState[] = [];
    /** Another component on the same store (the agent, the scheduler, an operator's tool). */
    const open = (): ClusterState => {
      const c = new ClusterState({ store });
      opened.push(c);
      return c;
    };

    beforeEach(async () => {
      store = await create();
      cluster = open();
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((c) => c.close()));
      await store.deletePrefix('');
      await store.close();
    });

    describe('releases', () => {
      it('putRelease writes once; the same record again is a no-op', async () => {
        const v1 = release('demo', 'v1');
        await expect(cluster.putRelease(v1)).resolves.toEqual({ created: true });
        await expect(cluster.putRelease(v1)).resolves.toEqual({ created: false });
        // The same record with its maps in another order is the same release.
        const reordered = {
          ...v1,
          processes: { worker: { command: 'node worker.js' }, web: { command: 'node server.js' } },
        };
        await expect(cluster.putRelease(reordered)).resolves.toEqual({ created: false });
        await expect(cluster.getRelease('demo', 'v1')).resolves.toEqual(v1);
        expect((await store.get(keys.release('demo', 'v1')))?.version).toBe(1);
      });

      it('putRelease refuses other content under an existing release and keeps the original', async () => {
        const v1 = release('demo', 'v1');
        await cluster.putRelease(v1);
        const other = release('demo', 'v1', { config: { LOG_LEVEL: 'debug' } });
        await expect(cluster.putRelease(other)).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_RELEASE_EXISTS',
          key: keys.release('demo', 'v1'),
        });
        await expect(cluster.getRelease('demo', 'v1')).resolves.toEqual(v1);
        await expect(cluster.releases('demo')).resolves.toEqual([v1]);
      });

      it('of concurrent putRelease of different records under one key, exactly one wins', async () => {
        const writers = [open(), open(), open()];
        for (let round = 0; round < 8; round++) {
          const id = `r${round}`;
          const candidates = writers.map((_, i) =>
            release('demo', id, { config: { WRITER: String(i) } }),
          );
          const results = await Promise.allSettled(
            writers.map((w, i) => w.putRelease(candidates[i] as ReleaseRecord)),
          );
          const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
          expect(won, `round ${round}`).toHaveLength(1);
          expect(results[won[0] as number]).toEqual({
            status: 'fulfilled',
            value: { created: true },
          });
          for (const r of results) {
            if (r.status === 'rejected')
              expect(r.reason).toMatchObject({ code: 'FLOTILLA_CLUSTER_RELEASE_EXISTS' });
          }
          await expect(cluster.getRelease('demo', id)).resolves.toEqual(
            candidates[won[0] as number],
          );
        }
        expect((await cluster.releases('demo')).map((r) => r.release)).toEqual(
          Array.from({ length: 8 }, (_, i) => `r${i}`),
        );
      });

      it('concurrent putRelease of the same record: one creates it, the others find it', async () => {
        const v1 = release('demo', 'v1');
        const results = await Promise.all([open(), open(), open()].map((w) => w.putRelease(v1)));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(results.filter((r) => !r.created)).toHaveLength(2);
      });

      it('refuses an invalid release, a release too large for the store, and writes nothing', async () => {
        await expect(
          cluster.putRelease(release('demo', 'v1', { config: { 'NOT-A-NAME': 'x' } })),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'release.config',
        });
        await expect(cluster.putRelease(release('demo/x', 'v1'))).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'release.app',
        });
        // Each var is within bounds; together they exceed one store value (1 MiB).
        const config = Object.fromEntries(
          Array.from({ length: 5 }, (_, i) => [`BIG_${i}`, 'x'.repeat(256 * 1024)]),
        );
        await expect(cluster.putRelease(release('demo', 'v1', { config }))).rejects.toMatchObject({
          code: 'FLOTILLA_STORE_TOO_LARGE',
        });
        await expect(cluster.getRelease('demo', 'v1')).resolves.toBeUndefined();
        expect((await store.list('')).kvs).toEqual([]);
      });

      it('getRelease of an absent release is undefined; of a corrupt one, an error with its key', async () => {
        await expect(cluster.getRelease('demo', 'v1')).resolves.toBeUndefined();
        await store.put(keys.release('demo', 'v1'), '{"app":"demo"');
        await expect(cluster.getRelease('demo', 'v1')).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          key: keys.release('demo', 'v1'),
        });
        await expect(cluster.getRelease('demo', '../v1')).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_ID',
        });
      });
    });

    describe('formations', () => {
      it('setFormation of a release that does not exist is refused and writes nothing', async () => {
        await expect(
          cluster.setFormation(formation('demo', 'v1', { web: { count: 1, resources: small } })),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_UNKNOWN_RELEASE',
          key: keys.release('demo', 'v1'),
        });
        await expect(cluster.formations()).resolves.toEqual([]);
        expect((await store.list('')).kvs).toEqual([]);
      });

      it('setFormation naming a process type the release lacks is refused and writes nothing', async () => {
        await cluster.putRelease(release('demo', 'v1'));
        // Names every object has (toString, constructor...) are not process types of the release.
        for (const type of ['clock', 'toString', 'constructor', 'hasOwnProperty']) {
          await expect(
            cluster.setFormation(
              formation('demo', 'v1', {
                web: { count: 1, resources: small },
                [type]: { count: 1, resources: small },
              }),
            ),
            type,
          ).rejects.toMatchObject({
            code: 'FLOTILLA_CLUSTER_UNKNOWN_RELEASE',
            path: `processes.${type}`,
          });
        }
        await expect(cluster.formations()).resolves.toEqual([]);
        expect(await store.get(keys.formation('demo', 'v1'))).toBeUndefined();
      });

      it('setFormation, formations and removeFormation', async () => {
        await cluster.putRelease(release('demo', 'v1'));
        await cluster.putRelease(release('other', 'v1'));
        const demo = formation('demo', 'v1', {
          web: { count: 3, resources: small, constraints: { zone: 'a' } },
          worker: { count: 1, resources: small, omni: true },
        });
        const other = formation('other', 'v1', { web: { count: 1, resources: small } });
        const { revision } = await cluster.setFormation(demo);
        expect((await store.get(keys.formation('demo', 'v1')))?.modRevision).toBe(revision);
        await cluster.setFormation(other);
        await expect(cluster.formations()).resolves.toEqual([demo, other]);
        await expect(cluster.formations({ app: 'other' })).resolves.toEqual([other]);
        await expect(cluster.removeFormation('demo', 'v1')).resolves.toBe(true);
        await expect(cluster.removeFormation('demo', 'v1')).resolves.toBe(false);
        await expect(cluster.formations()).resolves.toEqual([other]);
      });

      it('refuses an invalid formation before reading anything', async () => {
        await cluster.putRelease(release('demo', 'v1'));
        await expect(
          cluster.setFormation(
            formation('demo', 'v1', { web: { count: 1, resources: { cpu: 0, memory: 0 } } }),
          ),
        ).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_INVALID_RECORD' });
        await expect(
          cluster.setFormation(
            formation('demo', 'v1', { web: { count: 100_001, resources: small } }),
          ),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'formation.processes.web.count',
        });
        await expect(cluster.formations({ app: 'a/b' })).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_ID',
        });
        expect(await store.get(keys.formation('demo', 'v1'))).toBeUndefined();
      });
    });

    describe('hosts', () => {
      const h1 = { id: 'h1', addr: '127.0.0.1:7001', capacity: { cpu: 4000, memory: 8192 } };

      it('registerHost makes a host up; closing the registration takes it down and keeps its record', async () => {
        const agent = open();
        const reg = await agent.registerHost({ ...h1, tags: { zone: 'a' } });
        expect(await cluster.hosts()).toMatchObject([
          { record: { ...h1, tags: { zone: 'a' } }, live: true, state: 'up', control: undefined },
        ]);
        await reg.close();
        await expect(within(reg.ended, 'the lease ending')).resolves.toBe('revoked');
        expect(await store.get(keys.heartbeat('h1'))).toBeUndefined();
        expect(await cluster.hosts()).toMatchObject([
          { record: { ...h1, tags: { zone: 'a' } }, live: false, state: 'down' },
        ]);
        await reg.close(); // idempotent
      });

      it('a restarted agent cannot undo a drain, and its new capacity shows', async () => {
        const first = open();
        const reg = await first.registerHost(h1);
        await cluster.drainHost('h1', { reason: 'disk replacement' });
        await reg.close();
        expect(await cluster.hosts()).toMatchObject([{ state: 'down', control: { drain: true } }]);

        const restarted = open();
        const reg2 = await restarted.registerHost({
          ...h1,
          capacity: { cpu: 8000, memory: 16384 },
        });
        const [view] = await cluster.hosts();
        expect(view).toMatchObject({
          record: { capacity: { cpu: 8000, memory: 16384 } },
          live: true,
          state: 'draining',
          control: { drain: true, eligible: true, reason: 'disk replacement' },
        });
        await reg2.close();
      });

      it('the old lease of a restarted agent ending does not take the host down', async () => {
        const crashed = open();
        const old = await crashed.registerHost(h1);
        const restarted = await open().registerHost(h1);
        // The old process's lease ends (here revoked; a crash lets it expire): the heartbeat now
        // belongs to the new lease and stays.
        await old.close();
        expect((await cluster.hosts()).map((h) => h.state)).toEqual(['up']);
        await restarted.close();
        expect((await cluster.hosts()).map((h) => h.state)).toEqual(['down']);
      });

      it('drain, eligibility and their reasons; an unknown host is refused', async () => {
        await open().registerHost(h1);
        await expect(
          cluster.setEligible('h1', false, { reason: 'flaky nic' }),
        ).resolves.toMatchObject({
          eligible: false,
          drain: false,
          reason: 'flaky nic',
        });
        expect((await cluster.hosts())[0]?.state).toBe('ineligible');
        await cluster.drainHost('h1');
        const [draining] = await cluster.hosts();
        expect(draining?.state).toBe('draining');
        // The reason is the one of the last call: an older one does not linger.
        expect(draining?.control).toEqual({
          eligible: false,
          drain: true,
          updatedAt: expect.any(Number),
        });
        await cluster.undrainHost('h1');
        await cluster.setEligible('h1', true);
        expect((await cluster.hosts())[0]?.state).toBe('up');

        await expect(cluster.drainHost('h9')).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_UNKNOWN_HOST',
          key: keys.host('h9'),
        });
        await expect(cluster.drainHost('h1/../h2')).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_ID',
        });
        expect(await store.get(keys.hostControl('h9'))).toBeUndefined();
      });

      it('two operators changing one host at once lose neither change', async () => {
        await open().registerHost(h1);
        const [a, b] = [open(), open()];
        for (let round = 0; round < 5; round++) {
          await Promise.all([a.drainHost('h1'), b.setEligible('h1', false)]);
          expect((await cluster.hosts())[0]?.control, `round ${round}`).toMatchObject({
            drain: true,
            eligible: false,
          });
          await Promise.all([a.undrainHost('h1'), b.setEligible('h1', true)]);
          expect((await cluster.hosts())[0]?.state, `round ${round}`).toBe('up');
        }
      });

      it('refuses an invalid host before granting a lease', async () => {
        await expect(cluster.registerHost({ ...h1, id: 'a/b' })).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'host.id',
        });
        await expect(
          cluster.registerHost({ ...h1, capacity: { cpu: Number.NaN, memory: 1 } }),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'host.capacity.cpu',
        });
        await expect(
          cluster.registerHost({ ...h1, addr: 'x'.repeat(10_000) }),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'host.addr',
        });
        expect((await store.list('')).kvs).toEqual([]);
      });
    });

    describe('jobs', () => {
      it('reportJob writes the status beside the record and jobs() derives the state', async () => {
        await placeJob(store, jobRecord('h1', 'j1'));
        await placeJob(store, jobRecord('h2', 'j2', { app: 'other' }));
        expect((await cluster.jobs()).map((j) => j.state)).toEqual(['pending', 'pending']);
        await expect(
          cluster.reportJob('h1', 'j1', { state: 'up', port: 5000, updatedAt: 7 }),
        ).resolves.toBe(true);
        await expect(cluster.jobs({ hostId: 'h1' })).resolves.toEqual([
          {
            record: jobRecord('h1', 'j1'),
            status: { state: 'up', port: 5000, updatedAt: 7 },
            state: 'up',
          },
        ]);
        expect((await cluster.jobs({ app: 'other' })).map((j) => j.record.id)).toEqual(['j2']);
        await cluster.reportJob('h1', 'j1', {
          state: 'crashed',
          exitStatus: 137,
          signal: 'SIGKILL',
        });
        expect((await cluster.jobs({ hostId: 'h1' }))[0]?.state).toBe('crashed');
      });

      it('reportJob returns false and writes nothing when the job record is absent', async () => {
        await expect(cluster.reportJob('h1', 'j1', { state: 'up' })).resolves.toBe(false);
        // A job assigned to another host is not this host's to report.
        await placeJob(store, jobRecord('h2', 'j1'));
        await expect(cluster.reportJob('h1', 'j1', { state: 'up' })).resolves.toBe(false);
        expect(await store.get(keys.jobStatus('h1', 'j1'))).toBeUndefined();
        expect((await store.list(keys.jobStatuses)).kvs).toEqual([]);
      });

      it('reportJob refuses a bad status or id and writes nothing', async () => {
        await placeJob(store, jobRecord('h1', 'j1'));
        await expect(
          cluster.reportJob('h1', 'j1', { state: 'running' as 'up' }),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'jobStatus.state',
        });
        await expect(
          cluster.reportJob('h1', 'j1', { state: 'crashed', message: 'a\u0000b' }),
        ).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          path: 'jobStatus.message',
        });
        await expect(cluster.reportJob('h1', '../j1', { state: 'up' })).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_ID',
        });
        await expect(cluster.jobs({ hostId: 'h1/j1' })).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_ID',
        });
        expect((await store.list(keys.jobStatuses)).kvs).toEqual([]);
      });

      it('the scheduler and an agent writing at once lose neither write', async () => {
        const agent = open();
        await placeJob(store, jobRecord('h1', 'j1'));
        const rounds = 20;
        for (let round = 0; round < rounds; round++) {
          const desired = round % 2 === 0 ? 'run' : 'stop';
          const [, reported] = await Promise.all([
            setDesired(store, 'h1', 'j1', desired),
            agent.reportJob('h1', 'j1', {
              state: round % 2 === 0 ? 'starting' : 'up',
              message: `round ${round}`,
            }),
          ]);
          expect(reported).toBe(true);
        }
        const [view] = await cluster.jobs();
        expect(view?.record).toMatchObject({ desired: 'stop', stopReason: 'scaled-down' });
        expect(view?.status).toMatchObject({ state: 'up', message: `round ${rounds - 1}` });
        expect(view?.state).toBe('stopping');
        // The agent never wrote the scheduler's key: one creation plus one write per round.
        expect((await store.get(keys.job('h1', 'j1')))?.version).toBe(rounds + 1);
      });

      it('the scheduler and the agent racing with no pause still lose neither write', async () => {
        const agent = open();
        await placeJob(store, jobRecord('h1', 'j1'));
        await Promise.all([
          (async () => {
            for (let i = 0; i < 15; i++)
              await setDesired(store, 'h1', 'j1', i === 14 ? 'stop' : 'run');
          })(),
          (async () => {
            for (let i = 0; i < 15; i++)
              await agent.reportJob('h1', 'j1', { state: 'up', message: `${i}` });
          })(),
        ]);
        const [view] = await cluster.jobs();
        expect(view).toMatchObject({
          record: { desired: 'stop' },
          status: { state: 'up', message: '14' },
          state: 'stopping',
        });
      });
    });

    describe('watchAssigned', () => {
      it('any number of watches open at once print no MaxListenersExceeded warning', async () => {
        const agent = open();
        const warnings: string[] = [];
        const onWarning = (w: Error): void => void warnings.push(w.name);
        process.on('warning', onWarning);
        // A signal of its own for each (one shared by all would be the caller's to raise).
        const acs = Array.from({ length: 12 }, () => new AbortController());
        try {
          for (const [i, ac] of acs.entries()) {
            const assigned = agent.watchAssigned(`h${i}`, { signal: ac.signal });
            const watch = assigned[Symbol.asyncIterator]();
            expect((await next(watch, 'the snapshot')).type).toBe('snapshot');
          }
          await new Promise((resolve) => setImmediate(resolve));
          expect(warnings).not.toContain('MaxListenersExceededWarning');
        } finally {
          process.off('warning', onWarning);
          for (const ac of acs) ac.abort();
        }
      });

      it("delivers a host's jobs with their release: snapshot, assigned, changed, removed, invalid", async () => {
        await cluster.putRelease(release('demo', 'v1'));
        await placeJob(store, jobRecord('h1', 'j1'));
        await placeJob(store, jobRecord('h1', 'j2', { release: 'v9' })); // its release is missing
        await placeJob(store, jobRecord('h2', 'j3'));
        await store.put(keys.job('h1', 'corrupt'), '{"id":');

        const agent = open();
        const ac = new AbortController();
        const watch = agent.watchAssigned('h1', { signal: ac.signal })[Symbol.asyncIterator]();
        const snapshot = await next(watch, 'the snapshot');
        expect(brief(snapshot)).toEqual({
          type: 'snapshot',
          reset: false,
          jobs: [
            { id: 'j1', desired: 'run', release: 'v1', releaseError: undefined },
            {
              id: 'j2',
              desired: 'run',
              release: undefined,
              releaseError: 'FLOTILLA_CLUSTER_UNKNOWN_RELEASE',
            },
          ],
        });
        expect(snapshot.type === 'snapshot' && snapshot.jobs[0]?.release).toEqual(
          release('demo', 'v1'),
        );
        expect(brief(await next(watch, 'the corrupt record'))).toEqual({
          type: 'invalid',
          key: keys.job('h1', 'corrupt'),
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
        });

        await placeJob(store, jobRecord('h2', 'j4')); // another host's: not delivered
        await placeJob(store, jobRecord('h10', 'j5')); // a host whose id extends h1: not delivered
        await placeJob(store, jobRecord('h1', 'j6', { index: 2 }));
        expect(brief(await next(watch, 'j6 assigned'))).toEqual({
          type: 'assigned',
          job: { id: 'j6', desired: 'run', release: 'v1', releaseError: undefined },
        });

        await setDesired(store, 'h1', 'j1', 'stop');
        expect(brief(await next(watch, 'j1 asked to stop'))).toEqual({
          type: 'assigned',
          job: { id: 'j1', desired: 'stop', release: 'v1', releaseError: undefined },
        });

        // A release that was missing is read again once it exists.
        await cluster.putRelease(release('demo', 'v9'));
        await setDesired(store, 'h1', 'j2', 'stop');
        expect(brief(await next(watch, 'j2 with its release'))).toEqual({
          type: 'assigned',
          job: { id: 'j2', desired: 'stop', release: 'v9', releaseError: undefined },
        });

        await store.delete(keys.job('h1', 'j1'));
        expect(await next(watch, 'j1 removed')).toEqual({ type: 'removed', jobId: 'j1' });

        await store.put(keys.job('h1', 'j7'), JSON.stringify(jobRecord('h1', 'other-id')));
        expect(brief(await next(watch, 'a record unlike its key'))).toEqual({
          type: 'invalid',
          key: keys.job('h1', 'j7'),
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
        });

        ac.abort();
        await expect(within(watch.next(), 'the watch ending')).resolves.toEqual({
          done: true,
          value: undefined,
        });
      });

      it('a job whose release is corrupt comes with an INVALID_RECORD releaseError', async () => {
        await store.put(keys.release('demo', 'v1'), 'not json');
        await placeJob(store, jobRecord('h1', 'j1'));
        const ac = new AbortController();
        const watch = open().watchAssigned('h1', { signal: ac.signal })[Symbol.asyncIterator]();
        const snapshot = await next(watch, 'the snapshot');
        expect(snapshot.type === 'snapshot' && snapshot.jobs[0]?.releaseError).toMatchObject({
          code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
          key: keys.release('demo', 'v1'),
        });
        ac.abort();
        await watch.return?.(undefined);
      });
    });

    describe('reads report invalid records', () => {
      it("through the 'invalid' event, and still return the valid ones", async () => {
        await cluster.putRelease(release('demo', 'v1'));
        await cluster.setFormation(
          formation('demo', 'v1', { web: { count: 1, resources: small } }),
        );
        await open().registerHost({ id: 'h1', addr: 'a:1', capacity: small });
        await placeJob(store, jobRecord('h1', 'j1'));
        await placeJob(store, jobRecord('h1', 'j2'));
        await cluster.reportJob('h1', 'j1', { state: 'up' });
        const corrupt = [
          [keys.host('h2'), '{'],
          [
            keys.host('h3'),
            JSON.stringify({ id: 'h4', addr: 'a:1', capacity: small, registeredAt: 0 }),
          ],
          ['cluster/hosts/a/b', '{}'],
          [keys.hostControl('h1'), JSON.stringify({ eligible: 'yes', drain: false, updatedAt: 0 })],
          [keys.job('h1', 'j3'), 'null'],
          [keys.jobStatus('h1', 'j2'), JSON.stringify({ state: 'exploded', updatedAt: 0 })],
          [keys.formation('demo', 'v2'), JSON.stringify(formation('other', 'v2', {}))],
          [keys.release('demo', 'v3'), 'x'],
        ] as const;
        for (const [key, value] of corrupt) await store.put(key, value);

        const reader = open();
        const invalid: ClusterError[] = [];
        reader.on('invalid', (err) => invalid.push(err));
        const hosts = await reader.hosts();
        const jobs = await reader.jobs();
        const formations = await reader.formations();
        const releases = await reader.releases('demo');

        expect(hosts.map((h) => [h.record.id, h.state, h.control])).toEqual([
          ['h1', 'up', undefined],
        ]);
        expect(jobs.map((j) => [j.record.id, j.state])).toEqual([
          ['j1', 'up'],
          ['j2', 'pending'],
        ]);
        expect(formations.map((f) => f.release)).toEqual(['v1']);
        expect(releases.map((r) => r.release)).toEqual(['v1']);
        expect(
          invalid.every(
            (e) => e instanceof ClusterError && e.code === 'FLOTILLA_CLUSTER_INVALID_RECORD',
          ),
        ).toBe(true);
        expect(invalid.map((e) => e.key).sort()).toEqual(corrupt.map(([key]) => key).sort());
      });
    });

    describe('close', () => {
      it('calls after close() reject with FLOTILLA_CLUSTER_CLOSED', async () => {
        await cluster.putRelease(release('demo', 'v1'));
        await cluster.close();
        await cluster.close(); // idempotent
        const calls: [string, () => Promise<unknown>][] = [
          ['putRelease', () => cluster.putRelease(release('demo', 'v2'))],
          ['getRelease', () => cluster.getRelease('demo', 'v1')],
          ['releases', () => cluster.releases('demo')],
          ['setFormation', () => cluster.setFormation(formation('demo', 'v1', {}))],
          ['removeFormation', () => cluster.removeFormation('demo', 'v1')],
          ['formations', () => cluster.formations()],
          ['registerHost', () => cluster.registerHost({ id: 'h1', addr: 'a:1', capacity: small })],
          ['drainHost', () => cluster.drainHost('h1')],
          ['undrainHost', () => cluster.undrainHost('h1')],
          ['setEligible', () => cluster.setEligible('h1', false)],
          ['hosts', () => cluster.hosts()],
          ['reportJob', () => cluster.reportJob('h1', 'j1', { state: 'up' })],
          ['jobs', () => cluster.jobs()],
          ['watchAssigned', () => cluster.watchAssigned('h1')[Symbol.asyncIterator]().next()],
        ];
        for (const [name, call] of calls) {
          await expect(call(), name).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_CLOSED' });
        }
        // Nothing was written after close.
        expect((await store.list('')).kvs.map((kv) => kv.key)).toEqual([
          keys.release('demo', 'v1'),
        ]);
      });

      it('close() revokes the registrations made through it: their hosts go down', async () => {
        const agent = open();
        const reg = await agent.registerHost({ id: 'h1', addr: 'a:1', capacity: small });
        await agent.close();
        await expect(within(reg.ended, 'the lease ending')).resolves.toBe('revoked');
        expect((await cluster.hosts()).map((h) => h.state)).toEqual(['down']);
      });

      it('close() during a registerHost: the registration is refused and leaves no heartbeat', async () => {
        const agent = open();
        const registering = agent.registerHost({ id: 'h1', addr: 'a:1', capacity: small });
        // Handled at once: it may fail while close() is still being awaited (an unhandled rejection).
        registering.catch(() => undefined);
        await agent.close();
        await expect(registering).rejects.toMatchObject({ code: 'FLOTILLA_CLUSTER_CLOSED' });
        expect(await store.get(keys.heartbeat('h1'))).toBeUndefined();
        expect((await cluster.hosts()).map((h) => h.state)).not.toContain('up');
      });

      it('close() ends the watches opened through it with FLOTILLA_CLUSTER_CLOSED', async () => {
        const agent = open();
        const watch = agent.watchAssigned('h1')[Symbol.asyncIterator]();
        expect(brief(await next(watch, 'the snapshot'))).toEqual({
          type: 'snapshot',
          reset: false,
          jobs: [],
        });
        const pending = watch.next();
        pending.catch(() => undefined); // it fails while close() is awaited: handled at once
        await agent.close();
        await expect(within(pending, 'the watch ending')).rejects.toMatchObject({
          code: 'FLOTILLA_CLUSTER_CLOSED',
        });
      });
    });
  });
}

// Run on MemoryStore only when this file is the test file, not when the etcd suite imports it.
if (import.meta.url === pathToFileURL(expect.getState().testPath ?? '').href) {
  runClusterStateSuite('MemoryStore', () => new MemoryStore());

  describe('ClusterState on MemoryStore with a manual clock', () => {
    it('an agent cut off from the store: its lease expires, its host shows down, ended says expired', async () => {
      const clock = new ManualClock(1_700_000_000_000);
      const shared = new MemoryStore({ clock });
      const agentStore = new PartitionableStore(shared, { clock });
      const agent = new ClusterState({ store: agentStore, clock });
      const scheduler = new ClusterState({ store: shared, clock });
      const host = { id: 'h1', addr: 'a:1', capacity: small };

      const reg = await agent.registerHost(host, { ttlMs: 3000 });
      // Renewals keep it alive for as long as the agent can reach the store.
      await clock.advance(10_000);
      expect((await scheduler.hosts()).map((h) => h.state)).toEqual(['up']);

      agentStore.partitioned = true;
      await clock.advance(3001);
      expect(await scheduler.hosts()).toMatchObject([
        { record: { ...host, registeredAt: 1_700_000_000_000 }, live: false, state: 'down' },
      ]);

      // Back in touch, the agent's next renewal finds its lease gone.
      agentStore.partitioned = false;
      await clock.advance(1000);
      expect(reg.lease.state).toBe('ended');
      await expect(reg.ended).resolves.toBe('expired');

      // As the docs say, the agent registers again and the host is back.
      const again = await agent.registerHost(host, { ttlMs: 3000 });
      expect((await scheduler.hosts()).map((h) => h.state)).toEqual(['up']);
      await agent.close();
      await expect(again.ended).resolves.toBe('revoked');
      await scheduler.close();
      await shared.close();
    });

    it('watchAssigned rides out a store hiccup while reading a release, backing off on the clock', async () => {
      const clock = new ManualClock(1_700_000_000_000);
      const memory = new MemoryStore({ clock });
      let failures = 1;
      let failed!: () => void;
      const hiccup = new Promise<void>((resolve) => (failed = resolve));
      // The store fails the agent's first read of a release with a retryable error.
      const flaky = new Proxy(memory, {
        get(target, prop) {
          if (prop === 'get')
            return async (key: string, options?: CallOptions) => {
              if (key.startsWith(keys.releases) && failures-- > 0) {
                failed();
                throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'etcd is electing a leader');
              }
              return target.get(key, options);
            };
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
      const controller = new ClusterState({ store: memory, clock });
      const agent = new ClusterState({ store: flaky, clock });
      await controller.putRelease(release('demo', 'v1'));
      const ac = new AbortController();
      const watch = agent.watchAssigned('h1', { signal: ac.signal })[Symbol.asyncIterator]();
      expect(brief(await next(watch, 'the snapshot'))).toEqual({
        type: 'snapshot',
        reset: false,
        jobs: [],
      });

      const item = next(watch, 'j1 assigned');
      await placeJob(memory, jobRecord('h1', 'j1'));
      await hiccup;
      await clock.advance(100);
      expect(brief(await item)).toEqual({
        type: 'assigned',
        job: { id: 'j1', desired: 'run', release: 'v1', releaseError: undefined },
      });
      ac.abort();
      await expect(watch.next()).resolves.toMatchObject({ done: true });
      await Promise.all([agent.close(), controller.close()]);
      await memory.close();
    });

    it.each(['abort', 'close'] as const)(
      'watchAssigned ends on %s while it is retrying a release read',
      async (how) => {
        const clock = new ManualClock(1_700_000_000_000);
        const memory = new MemoryStore({ clock });
        let failed!: () => void;
        const hiccup = new Promise<void>((resolve) => (failed = resolve));
        // Every read of a release fails, retryably: the watch backs off for ever.
        const down = new Proxy(memory, {
          get(target, prop) {
            if (prop === 'get')
              return async (key: string, options?: CallOptions) => {
                if (!key.startsWith(keys.releases)) return target.get(key, options);
                failed();
                throw new StoreError(StoreErrorCodes.UNAVAILABLE, 'etcd is unreachable');
              };
            const value = Reflect.get(target, prop, target) as unknown;
            return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
          },
        });
        const agent = new ClusterState({ store: down, clock });
        const ac = new AbortController();
        const watch = agent.watchAssigned('h1', { signal: ac.signal })[Symbol.asyncIterator]();
        await next(watch, 'the snapshot');
        const item = watch.next();
        await placeJob(memory, jobRecord('h1', 'j1'));
        await hiccup;
        await clock.advance(1000); // a few retries
        if (how === 'abort') {
          ac.abort();
          await expect(within(item, 'the watch ending')).resolves.toMatchObject({ done: true });
        } else {
          await agent.close();
          await expect(within(item, 'the watch ending')).rejects.toMatchObject({
            code: 'FLOTILLA_CLUSTER_CLOSED',
          });
        }
        expect(clock.pending).toBe(0); // no retry left behind
        await agent.close();
        await memory.close();
      },
    );

    it('the heartbeat records when the agent registered, on the injected clock', async () => {
      const clock = new ManualClock(42_000);
      const store = new MemoryStore({ clock });
      const cluster = new ClusterState({ store, clock });
      const reg = await cluster.registerHost({ id: 'h1', addr: 'a:1', capacity: small });
      const beat = JSON.parse((await store.get(keys.heartbeat('h1')))?.value ?? '{}') as unknown;
      expect(beat).toEqual({ at: 42_000, lease: reg.lease.id });
      expect((await cluster.hosts())[0]?.record.registeredAt).toBe(42_000);
      await cluster.close();
      await store.close();
    });
  });
}

describe('ClusterState.registerHost exclusive', () => {
  it('refuses a host whose heartbeat another live lease holds, and lets the holder take it over', async () => {
    const store = new MemoryStore();
    const cluster = new ClusterState({ store });
    const host = { id: 'h1', addr: '127.0.0.1:7000', capacity: { cpu: 1000, memory: 1024 } };
    const first = await cluster.registerHost(host, { exclusive: true });
    await expect(cluster.registerHost(host, { exclusive: true })).rejects.toMatchObject({
      code: 'FLOTILLA_CLUSTER_HOST_IN_USE',
      retryable: true,
    });
    // The refused attempt left the heartbeat with the first lease.
    const beat = await store.get(cluster.keys.heartbeat('h1'));
    expect(beat?.lease).toBe(first.lease.id);
    // Its own previous life's lease may be taken over while it lives.
    const second = await cluster.registerHost(host, { exclusive: true, takeOver: first.lease.id });
    expect((await store.get(cluster.keys.heartbeat('h1')))?.lease).toBe(second.lease.id);
    await first.close();
    expect((await cluster.hosts())[0]?.state).toBe('up'); // the old lease no longer holds it
    await cluster.close();
    await store.close();
  });
});
