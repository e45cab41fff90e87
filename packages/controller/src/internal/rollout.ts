import type { ClusterState, Formation, ProcessSpec } from '@flotilla/cluster';
import { type Clock, isRetryable, type Logger } from '@flotilla/core';
import type { Discovery } from '@flotilla/discovery';
import { IMAGE_HOST_TAG, serviceName } from '@flotilla/host';
import type { FailedJob } from '../deployment.js';
import type { JobLogSource } from '../job-logs.js';
import type { JobMirror, MirroredJob } from './job-mirror.js';
import { Notifier, waitUntil } from './notifier.js';

/** Resolved deploy settings. */
export interface RolloutSettings {
  readonly batchSize: number;
  readonly surge: number;
  readonly readyTimeoutMs: number;
  readonly stopTimeoutMs: number;
  /** How long a new job stays up (and ready) before it counts. */
  readonly minHealthyMs: number;
}

/** What to roll out. */
export interface RolloutPlan {
  readonly app: string;
  /** The cluster release id going live (its record is written). */
  readonly target: string;
  /**
   * Per process type: how many jobs of the target, what each reserves, and the host tags it
   * needs (`flotilla.artifact.image` for an image release, an operator's).
   */
  readonly processes: Readonly<
    Record<string, Pick<ProcessSpec, 'count' | 'resources' | 'constraints'>>
  >;
  /** Types whose jobs are published in discovery once their health check passes. */
  readonly healthChecked: ReadonlySet<string>;
}

/** The parts a rollout works with. */
export interface RolloutContext {
  readonly cluster: ClusterState;
  readonly discovery: Discovery;
  readonly mirror: JobMirror;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly logs: JobLogSource | undefined;
  readonly progress: (message: string) => void;
}

/** How a rollout ended. */
export type RolloutResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string; readonly failedJobs: readonly FailedJob[] };

class RolloutFailure extends Error {
  constructor(
    readonly reason: string,
    readonly jobs: readonly MirroredJob[],
  ) {
    super(reason);
  }
}

const ENDED = new Set(['down', 'crashed']);
const LOG_LINES = 20;

/**
 * A rolling deploy: per process type, in steps of `batchSize`, start new jobs, wait until each
 * is ready (up, and ready in discovery when health checked), then lower the old formations so
 * the scheduler stops old jobs (the agents deregister, wait for the routers' drain, stop them),
 * and wait until they are gone. With `surge` 0 old jobs go first, then new ones come. A new job
 * that crashes, or a step not ready within `readyTimeoutMs`, fails the rollout: the target's
 * formation is removed and the old formations are restored as they were.
 */
export async function rollout(
  ctx: RolloutContext,
  plan: RolloutPlan,
  settings: RolloutSettings,
  signal?: AbortSignal,
): Promise<RolloutResult> {
  const { cluster, mirror, app, target } = { ...ctx, ...plan };
  await mirror.ready;
  const all = await cluster.formations({ app });
  const original = all.filter((f) => f.release !== target);
  const old = new Map<string, Map<string, ProcessSpec>>(
    original.map((f) => [f.release, new Map(Object.entries(f.processes))]),
  );
  const oldReleases = new Set(old.keys());
  const counts: Record<string, number> = {};
  for (const type of Object.keys(plan.processes)) counts[type] = 0;
  const crashed = new Map<string, MirroredJob>();
  const discoveryReady = new Map<string, Set<string>>();
  /** When each new job was first seen up (and ready): it counts `minHealthyMs` later. */
  const readySince = new Map<string, number>();
  const notifier = new Notifier();
  /** A mirror that stopped watching (the store closed) fails every wait at once. */
  const watching = (): void => {
    if (mirror.failure !== undefined)
      throw new RolloutFailure(
        `the cluster state can no longer be watched: ${(mirror.failure as Error).message}`,
        [],
      );
  };
  const unsubscribe = mirror.subscribe((change) => {
    if (
      change.job?.record.app === app &&
      change.job.record.release === target &&
      change.job.state === 'crashed'
    )
      crashed.set(change.jobId, change.job);
    notifier.notify();
  });
  const unlink = linkNotifier(mirror.changed, notifier);
  const watches = new AbortController();
  const onAbort = (): void => watches.abort();
  signal?.addEventListener('abort', onAbort, { once: true });

  const writeTarget = (): Promise<unknown> =>
    cluster.setFormation({
      app,
      release: target,
      processes: Object.fromEntries(
        Object.entries(plan.processes).map(([t, p]) => [t, { ...p, count: counts[t] ?? 0 }]),
      ),
    });
  const oldCount = (type: string): number => {
    let n = 0;
    for (const procs of old.values()) n += procs.get(type)?.count ?? 0;
    return n;
  };
  /** Lowers the old formations' count of a type by `by`, largest first, and writes them. */
  const lowerOld = async (type: string, by: number): Promise<void> => {
    let left = by;
    const touched = new Set<string>();
    const byCount = [...old.entries()].sort(
      (a, b) => (b[1].get(type)?.count ?? 0) - (a[1].get(type)?.count ?? 0),
    );
    for (const [release, procs] of byCount) {
      const spec = procs.get(type);
      if (spec === undefined || spec.count === 0 || left === 0) continue;
      const take = Math.min(left, spec.count);
      procs.set(type, { ...spec, count: spec.count - take });
      left -= take;
      touched.add(release);
    }
    for (const release of touched) {
      const procs = old.get(release);
      if (procs !== undefined)
        await cluster.setFormation({ app, release, processes: Object.fromEntries(procs) });
    }
  };
  const waitOldGone = async (type: string): Promise<void> => {
    const want = oldCount(type);
    const res = await waitUntil(
      notifier,
      () => {
        watching();
        const live = mirror
          .jobs(app, { releases: oldReleases, type })
          .filter((j) => !ENDED.has(j.state));
        return live.length <= want ? true : undefined;
      },
      { timeoutMs: settings.stopTimeoutMs, clock: ctx.clock, signal },
    );
    if ('timedOut' in res) {
      const live = mirror
        .jobs(app, { releases: oldReleases, type })
        .filter((j) => !ENDED.has(j.state));
      // Old jobs that will not stop do not fail the deploy: the new ones serve; say so.
      ctx.progress(
        `${type}: ${live.length - want} old job(s) still stopping after ${settings.stopTimeoutMs} ms; going on`,
      );
    } else if ('aborted' in res) throw new RolloutFailure('the deploy was cancelled', []);
  };
  const waitReady = async (type: string, want: number): Promise<void> => {
    const ready = discoveryReady.get(type);
    // A wake-up for when the soonest job that is up has been up for `minHealthyMs`.
    let wake: ReturnType<Clock['setTimeout']> | undefined;
    let said = false;
    const res = await waitUntil(
      notifier,
      () => {
        watching();
        const failed = [...crashed.values()].filter((j) => j.record.type === type);
        if (failed.length > 0) return { failed };
        const now = ctx.clock.now();
        let up = 0;
        let healthy = 0;
        let soonest = Infinity;
        for (const j of mirror.jobs(app, { releases: new Set([target]), type })) {
          const id = j.record.id;
          if (j.state !== 'up' || (ready !== undefined && !ready.has(id))) {
            readySince.delete(id);
            continue;
          }
          up++;
          let since = readySince.get(id);
          if (since === undefined) readySince.set(id, (since = now));
          const left = since + settings.minHealthyMs - now;
          if (left <= 0) healthy++;
          else soonest = Math.min(soonest, left);
        }
        if (healthy >= want) return { failed: [] as MirroredJob[] };
        if (up >= want && !said) {
          said = true;
          ctx.progress(
            `${type}: ${up} new job(s) up; each must stay up ${settings.minHealthyMs} ms to count`,
          );
        }
        if (soonest !== Infinity && wake === undefined)
          wake = ctx.clock.setTimeout(() => {
            wake = undefined;
            notifier.notify();
          }, soonest);
        return undefined;
      },
      { timeoutMs: settings.readyTimeoutMs, clock: ctx.clock, signal },
    ).finally(() => {
      if (wake !== undefined) ctx.clock.clearTimeout(wake);
    });
    if ('aborted' in res) throw new RolloutFailure('the deploy was cancelled', []);
    if ('timedOut' in res) {
      const jobs = mirror.jobs(app, { releases: new Set([target]), type });
      const now = ctx.clock.now();
      // Up but not yet for minHealthyMs is not ready either (it was said "0 did not").
      const notReady = jobs.filter(
        (j) =>
          j.state !== 'up' ||
          (ready !== undefined && !ready.has(j.record.id)) ||
          now - (readySince.get(j.record.id) ?? now) < settings.minHealthyMs,
      );
      const placed = jobs.filter((j) => !ENDED.has(j.state)).length;
      const why =
        placed < want
          ? `only ${placed} of ${want} ${type} job(s) were placed: ${await unplacedWhy(cluster, type, plan.processes[type])}`
          : `${notReady.length} ${type} job(s) did not become ready${settings.minHealthyMs > 0 ? ` and stay up ${settings.minHealthyMs} ms` : ''}`;
      throw new RolloutFailure(`${why} within ${settings.readyTimeoutMs} ms`, notReady);
    }
    if (res.value.failed.length > 0) {
      const j = res.value.failed[0] as MirroredJob;
      throw new RolloutFailure(
        // The dyno's name, as `ps` shows it; the driver's message names the job.
        `new ${type}.${j.record.index} crashed: ${j.status?.message ?? `job ${j.record.id}`}`,
        res.value.failed,
      );
    }
  };

  try {
    // Watch readiness of the health-checked types in discovery before any job starts.
    for (const type of Object.keys(plan.processes)) {
      if (!plan.healthChecked.has(type)) continue;
      const set = new Set<string>();
      discoveryReady.set(type, set);
      const started = watchReady(
        ctx.discovery,
        serviceName(app, type),
        set,
        notifier,
        watches.signal,
      );
      await started;
    }
    await writeTarget();
    const types = Object.keys(plan.processes).sort((a, b) =>
      a === 'web' ? -1 : b === 'web' ? 1 : a < b ? -1 : 1,
    );
    for (const type of types) {
      const n = plan.processes[type]?.count ?? 0;
      while ((counts[type] ?? 0) < n) {
        const k = Math.min(settings.batchSize, n - (counts[type] ?? 0));
        const takeOut = Math.min(k, oldCount(type));
        if (settings.surge === 0 && takeOut > 0) {
          await lowerOld(type, takeOut);
          await waitOldGone(type);
        }
        counts[type] = (counts[type] ?? 0) + k;
        await writeTarget();
        ctx.progress(`${type}: starting ${counts[type]} of ${n} new job(s)`);
        await waitReady(type, counts[type] ?? 0);
        ctx.progress(`${type}: ${counts[type]} of ${n} new job(s) ready`);
        if (settings.surge > 0 && takeOut > 0) {
          await lowerOld(type, takeOut);
          ctx.progress(`${type}: stopping ${takeOut} old job(s)`);
          await waitOldGone(type);
        }
      }
      const rest = oldCount(type);
      if (rest > 0) {
        await lowerOld(type, rest);
        ctx.progress(`${type}: stopping ${rest} old job(s)`);
        await waitOldGone(type);
      }
    }
    // Types the old releases ran and the new one does not.
    for (const procs of old.values())
      for (const type of procs.keys())
        if (!(type in plan.processes) && oldCount(type) > 0) {
          await lowerOld(type, oldCount(type));
          ctx.progress(`${type}: stopping old job(s), the new release has no ${type}`);
          await waitOldGone(type);
        }
    for (const release of old.keys()) await cluster.removeFormation(app, release);
    return { ok: true };
  } catch (err) {
    const failure =
      err instanceof RolloutFailure
        ? err
        : new RolloutFailure(`the deploy failed: ${(err as Error).message}`, []);
    ctx.logger.warn({ app, target, reason: failure.reason }, 'deploy failed: rolling back');
    ctx.progress(`deploy failed: ${failure.reason}; rolling back`);
    await restore(ctx, app, target, original);
    const failedJobs = await Promise.all(failure.jobs.map((j) => describe(ctx, j)));
    return { ok: false, reason: failure.reason, failedJobs };
  } finally {
    unsubscribe();
    unlink();
    watches.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The ways to more room; the flags are the reference server's (`flotilla server` runs one host). */
const MORE_ROOM =
  'add a host, or give one more CPU and memory (the embedded server: --host-cpu <millis> and --host-memory <MiB>)';

/**
 * Why `type`'s jobs were not placed, as far as the rollout can tell, and what the user can do:
 * no up host runs images for an image release (the tag is the agents', no operator can add it);
 * no host is up; no up host has the type's tags; one job is larger than any up host; or the up
 * hosts are full. Names the type and what each of its jobs asks for.
 */
async function unplacedWhy(
  cluster: ClusterState,
  type: string,
  spec: Pick<ProcessSpec, 'count' | 'resources' | 'constraints'> | undefined,
): Promise<string> {
  const hosts = await cluster.hosts().catch(() => undefined);
  if (spec === undefined || hosts === undefined)
    return `no host had room for them or the tags they need: ${MORE_ROOM}`;
  const { cpu, memory } = spec.resources;
  const asks = `each ${type} job asks for ${cpu} millicores and ${memory} MiB`;
  const up = hosts.filter((x) => x.state === 'up');
  if (up.length === 0)
    return `no host is up (${hosts.length === 0 ? 'none has registered' : `${hosts.length} known, none up and eligible`}): start a host agent, or undrain a host`;
  const constraints = spec.constraints ?? {};
  const matching = up.filter((x) =>
    Object.entries(constraints).every(([k, v]) => x.record.tags?.[k] === v),
  );
  if (matching.length === 0)
    return constraints[IMAGE_HOST_TAG] !== undefined
      ? 'the release is a container image, and no host that is up runs images (a host agent on a driver that runs images, such as DockerDriver, tags its host flotilla.artifact.image): start one'
      : `no up host has the tags ${type} needs (${JSON.stringify(constraints)}): tag a host so, or change the constraints`;
  // How many jobs of this size fit in (c, m): what "largest" and "roomiest" compare.
  const fit = (c: number, m: number): number =>
    Math.min(c / Math.max(cpu, 1), m / Math.max(memory, 1));
  const largest = matching.reduce((a, b) =>
    fit(b.record.capacity.cpu, b.record.capacity.memory) >
    fit(a.record.capacity.cpu, a.record.capacity.memory)
      ? b
      : a,
  );
  const cap = largest.record.capacity;
  if (cap.cpu < cpu || cap.memory < memory)
    return `${asks}, more than any up host has in all (the largest, ${largest.record.id}, has ${cap.cpu} millicores and ${cap.memory} MiB): give ${type} a smaller size, or ${MORE_ROOM}`;
  const free = matching.map((x) => ({
    cpu: x.record.capacity.cpu - (x.alloc?.cpu ?? 0),
    memory: x.record.capacity.memory - (x.alloc?.memory ?? 0),
  }));
  const roomiest = free.reduce((a, b) => (fit(b.cpu, b.memory) > fit(a.cpu, a.memory) ? b : a));
  return `${asks} (${spec.count} in all), and the ${matching.length} up host(s) are full (the roomiest has ${Math.max(roomiest.cpu, 0)} millicores and ${Math.max(roomiest.memory, 0)} MiB free): scale ${type} or other apps down, give ${type} a smaller size, or ${MORE_ROOM}`;
}

/** Rolls back: the target's jobs go, the old formations are as they were. Retried: it must land. */
async function restore(
  ctx: RolloutContext,
  app: string,
  target: string,
  original: readonly Formation[],
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.cluster.removeFormation(app, target);
      for (const f of original) await ctx.cluster.setFormation(f);
      return;
    } catch (err) {
      // A store that cannot answer now may later (retryable); a closed one never will.
      if (!isRetryable(err) || attempt >= 20) throw err;
      ctx.logger.error({ err, app, target }, 'rollback write failed: retrying');
      await new Promise<void>((resolve) =>
        ctx.clock.setTimeout(resolve, Math.min(100 * 2 ** attempt, 5000)),
      );
    }
  }
}

async function describe(ctx: RolloutContext, j: MirroredJob): Promise<FailedJob> {
  const r = j.record;
  let logs: string[] = [];
  if (ctx.logs !== undefined) {
    logs = await ctx.logs
      .tail(
        { id: r.id, app: r.app, release: r.release, type: r.type, hostId: r.hostId },
        LOG_LINES,
        {
          signal: AbortSignal.timeout(5000),
        },
      )
      .catch(() => []);
  }
  return {
    id: r.id,
    type: r.type,
    host: r.hostId,
    state: j.state,
    ...(j.status?.exitStatus === undefined ? {} : { exitStatus: j.status.exitStatus }),
    ...(j.status?.signal === undefined ? {} : { signal: j.status.signal }),
    ...(j.status?.message === undefined ? {} : { message: j.status.message }),
    logs,
  };
}

/** Keeps `ready` the set of ready instance ids of a service; resolves once the first snapshot is in. */
function watchReady(
  discovery: Discovery,
  service: string,
  ready: Set<string>,
  notifier: Notifier,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve) => {
    void (async () => {
      try {
        for await (const ev of discovery.watch(service, { signal, readyOnly: true })) {
          if (ev.kind === 'current') {
            ready.clear();
            for (const i of ev.instances) ready.add(i.id);
            resolve();
          } else if (ev.kind === 'up' || ev.kind === 'update') ready.add(ev.instance.id);
          else if (ev.kind === 'down') ready.delete(ev.instance.id);
          notifier.notify();
        }
      } catch {
        // The discovery closed: the deploy's wait ends by its timeout or signal.
      } finally {
        resolve();
      }
    })();
  });
}

function linkNotifier(from: Notifier, to: Notifier): () => void {
  let live = true;
  const loop = (): void => {
    const next = from.next();
    void next.promise.then(() => {
      if (!live) return;
      to.notify();
      loop();
    });
  };
  loop();
  return () => {
    live = false;
  };
}
