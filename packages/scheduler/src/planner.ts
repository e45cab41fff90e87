import type { StopReason } from '@flotilla/cluster';
import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { BinpackPlacer } from './internal/binpack-placer.js';
import { Cluster, constraintSignature } from './internal/cluster.js';
import type { Group, JobEntry, Need, Placer } from './internal/placement.js';
import { PluginPlacer } from './internal/plugin-placer.js';
import { SpreadPlacer } from './internal/spread-placer.js';
import { describeOverLimit, describeUnplaced } from './internal/unplaced.js';
import { shown } from './internal/validate.js';
import type { PlacementPlugin } from './plugins.js';
import type {
  Formation,
  HostSnapshot,
  JobSnapshot,
  Plan,
  PlannedStart,
  PlannedStop,
  ProcessSpec,
  Strategy,
  Unplaced,
} from './types.js';

/** Options of a {@link Planner} (and of `schedule`). */
export interface PlannerOptions {
  /**
   * `spread` (default): a process type's jobs spread as evenly as eligible hosts allow, first
   * across values of the spread tag, then across hosts, least loaded first. `binpack`: as few
   * hosts as possible (first fit, decreasing sizes, over hosts in best-fit order), CPU-heavy
   * and memory-heavy jobs mixed so that hosts fill in both dimensions.
   */
  readonly strategy?: Strategy;
  /** Tie-break seed: the same inputs in the same order and seed give the same plan (default 0). */
  readonly seed?: number;
  /** The host tag spread across first (default `'zone'`). */
  readonly spreadTag?: string;
  /** Extra filter and score steps; see {@link PlacementPlugin}. */
  readonly plugins?: readonly PlacementPlugin[];
  /**
   * The most jobs one process type may ask for (`count`, or `count` times the eligible hosts
   * for an omni type); default {@link DEFAULT_MAX_JOBS_PER_TYPE}. A type that asks for more
   * places nothing and is reported `unplaced` with reason `over-limit`, at a cost that does not
   * grow with the count: a formation of a hundred million jobs is a typo, not a plan.
   */
  readonly maxJobsPerType?: number;
}

/** The default of {@link PlannerOptions.maxJobsPerType}: the count a formation record may hold. */
export const DEFAULT_MAX_JOBS_PER_TYPE = 100_000;

const COUNTED = new Set(['pending', 'starting', 'up']);
const HOLDING = new Set(['pending', 'starting', 'up', 'stopping']);

/**
 * The scheduler's state, kept current change by change, and planning only what changed: the
 * groups (app, release, process type) whose formation or jobs changed, the groups that had
 * jobs on a host that changed, and, when capacity appears, the groups still waiting for it.
 * `schedule()` is a Planner loaded with a snapshot that plans everything once.
 *
 * Planning does not change the state: placements are tentative. The caller commits the plan
 * and feeds the result back (`setJob` for the jobs it started, `setJob` with state `stopping`
 * for the jobs it stopped).
 *
 * @example
 * ```ts
 * const planner = new Planner({ strategy: 'spread' });
 * for (const h of hosts) planner.setHost(h);
 * planner.setFormation({ app: 'demo', release: 'v1', processes: { web: { count: 3, resources } } });
 * const plan = planner.plan(); // only what changed since the last plan
 * ```
 */
export class Planner {
  readonly #cluster: Cluster;
  readonly #placer: Placer;
  readonly #jobs = new Map<string, JobEntry>();
  readonly #jobsByHost = new Map<string, JobEntry[]>();
  readonly #groups = new Map<string, Group>();
  readonly #byApp = new Map<string, Map<string, Map<string, Group>>>();
  readonly #formations = new Map<string, Formation>();
  readonly #dirty = new Set<Group>();
  /** Groups that could not place everything: retried when capacity appears. */
  readonly #waiting = new Set<Group>();
  readonly #omni = new Set<Group>();
  #capacityChanged = false;
  #lastGroup: Group | undefined;
  #frozen = false;
  readonly #maxJobs: number;

  constructor(options: PlannerOptions = {}) {
    const o = checkOptions(options ?? {});
    this.#maxJobs = o.maxJobsPerType;
    const { strategy, plugins } = o;
    this.#cluster = new Cluster(o.spreadTag, o.seed);
    this.#placer =
      plugins.length > 0
        ? new PluginPlacer(this.#cluster, strategy, plugins)
        : strategy === 'spread'
          ? new SpreadPlacer(this.#cluster)
          : new BinpackPlacer(this.#cluster);
  }

  /** Counts of what the planner holds. */
  get stats(): { hosts: number; jobs: number; groups: number; dirty: number; waiting: number } {
    return {
      hosts: this.#cluster.index.size,
      jobs: this.#jobs.size,
      groups: this.#groups.size,
      dirty: this.#dirty.size,
      waiting: this.#waiting.size,
    };
  }

  /** Whether a plan now could do anything. */
  get pending(): boolean {
    return this.#dirty.size > 0 || (this.#capacityChanged && this.#waiting.size > 0);
  }

  /** Adds or replaces a host. */
  setHost(host: HostSnapshot): void {
    this.#thaw();
    const { isNew, changed, forced } = this.#cluster.setHost(host);
    const jobs = this.#jobsByHost.get(host.id);
    // Jobs that arrived before their host now hold resources on it.
    if (isNew && jobs !== undefined) {
      for (const e of jobs) this.#hold(e);
    }
    if (!changed) {
      // A drain's deadline passed (or was lifted): only its jobs are planned again.
      if (forced) for (const e of jobs ?? []) this.#dirty.add(e.group);
      return;
    }
    this.#placer.reset();
    for (const e of jobs ?? []) this.#dirty.add(e.group);
    for (const g of this.#omni) this.#dirty.add(g);
    if (host.state === 'up') this.#capacityChanged = true;
  }

  /** Removes a host: its jobs are stopped and replaced when planned. */
  removeHost(id: string): void {
    this.#thaw();
    const c = this.#cluster;
    const h = c.removeHost(id);
    if (h === undefined) return;
    c.usedCpu[h] = 0;
    c.usedMem[h] = 0;
    for (const e of this.#jobsByHost.get(id) ?? []) {
      e.held = -1;
      this.#dirty.add(e.group);
    }
    this.#placer.reset();
  }

  /**
   * Adds or replaces a job (a new state, say). `planned`: the job is a new one that this
   * planner's own plan asked for, now committed; its group is not planned again for it (a
   * commit of a million starts otherwise left every group to be reconciled once more, for
   * nothing). A change that does call for planning (a new formation, a conflict) marks the group
   * itself; so does a job that its group's reconcile would not keep where it is (its formation
   * removed, its host gone, down, draining or retagged between the plan and the commit).
   */
  setJob(job: JobSnapshot, options?: { planned?: boolean }): void {
    this.#thaw();
    const prev = this.#jobs.size === 0 ? undefined : this.#jobs.get(job.id);
    if (prev !== undefined) {
      const sameGroup =
        prev.job.app === job.app && prev.job.release === job.release && prev.job.type === job.type;
      const counted =
        COUNTED.has(prev.job.state) !== COUNTED.has(job.state) ||
        (prev.group.awaitingUp && (prev.job.state === 'up') !== (job.state === 'up'));
      const moved = prev.job.hostId !== job.hostId;
      const resized =
        prev.job.resources.cpu !== job.resources.cpu ||
        prev.job.resources.memory !== job.resources.memory;
      const holds = HOLDING.has(prev.job.state) !== HOLDING.has(job.state);
      if (sameGroup && !moved && !resized && !holds) {
        prev.job = job;
        if (counted) this.#dirty.add(prev.group);
        return;
      }
      this.removeJob(job.id);
    }
    const group = this.#group(job.app, job.release, job.type);
    let byHost = this.#jobsByHost.get(job.hostId);
    if (byHost === undefined) this.#jobsByHost.set(job.hostId, (byHost = []));
    const entry: JobEntry = { job, held: -1, group, gi: group.jobs.length, hi: byHost.length };
    this.#jobs.set(job.id, entry);
    group.jobs.push(entry);
    byHost.push(entry);
    this.#hold(entry);
    if (
      COUNTED.has(job.state) &&
      (prev !== undefined ||
        options?.planned !== true ||
        this.#standing(group, job.hostId) !== 'keep')
    )
      this.#dirty.add(group);
  }

  /**
   * Where a job of `g` on `hostId` stands: kept, on a draining host (kept until replaced), or
   * to be stopped, and why. Reconcile acts on it; `setJob` with `planned` plans the group again
   * for anything but `keep` (what changed between a plan and its commit landing).
   */
  #standing(g: Group, hostId: string): 'keep' | 'draining' | StopReason {
    const c = this.#cluster;
    const h = c.index.get(hostId);
    if (h === undefined) return 'host-unknown';
    const state = (c.hosts[h] as HostSnapshot).state;
    if (state === 'down') return 'host-down';
    if (state === 'draining') return 'draining';
    if (g.spec === undefined) return 'no-formation';
    if (!c.matches(h, g.spec.constraints)) return 'constraint-mismatch';
    return 'keep';
  }

  /** Forgets a job (it is gone from the store). */
  removeJob(id: string): void {
    this.#thaw();
    const e = this.#jobs.get(id);
    if (e === undefined) return;
    this.#release(e);
    this.#jobs.delete(id);
    const inGroup = e.group.jobs;
    const lastInGroup = inGroup.pop() as JobEntry;
    if (lastInGroup !== e) {
      inGroup[e.gi] = lastInGroup;
      lastInGroup.gi = e.gi;
    }
    const byHost = this.#jobsByHost.get(e.job.hostId) as JobEntry[];
    const lastOnHost = byHost.pop() as JobEntry;
    if (lastOnHost !== e) {
      byHost[e.hi] = lastOnHost;
      lastOnHost.hi = e.hi;
    }
    if (byHost.length === 0) this.#jobsByHost.delete(e.job.hostId);
    if (COUNTED.has(e.job.state)) this.#dirty.add(e.group);
    this.#forgetIfEmpty(e.group);
  }

  /** Adds or replaces the formation of an app's release. */
  setFormation(formation: Formation): void {
    this.#thaw();
    const key = formationKey(formation.app, formation.release);
    const before = this.#formations.get(key);
    this.#formations.set(key, formation);
    for (const type of Object.keys(before?.processes ?? {})) {
      if (!(type in formation.processes))
        this.#setSpec(formation.app, formation.release, type, undefined);
    }
    for (const [type, spec] of Object.entries(formation.processes)) {
      this.#setSpec(formation.app, formation.release, type, spec);
    }
  }

  /** Removes the formation of an app's release: its jobs will be stopped. */
  removeFormation(app: string, release: string): void {
    this.#thaw();
    const key = formationKey(app, release);
    const before = this.#formations.get(key);
    if (before === undefined) return;
    this.#formations.delete(key);
    for (const type of Object.keys(before.processes)) this.#setSpec(app, release, type, undefined);
  }

  /**
   * The jobs the planner holds of one process type of a release, as last given to
   * {@link setJob} (jobs it dropped, down ones say, are not listed). Empty for an unknown one.
   */
  *jobsOf(app: string, release: string, type: string): IterableIterator<JobSnapshot> {
    const g = this.#byApp.get(app)?.get(release)?.get(type);
    if (g === undefined) return;
    for (const e of g.jobs) yield e.job;
  }

  /** Marks every process type for planning again (after the ownership of apps changed, say). */
  invalidateAll(): void {
    for (const releases of this.#byApp.values())
      for (const types of releases.values()) for (const g of types.values()) this.#dirty.add(g);
  }

  /** Marks a process type for planning again (after a commit of its placements failed). */
  invalidate(app: string, release: string, type: string): void {
    const g = this.#byApp.get(app)?.get(release)?.get(type);
    if (g !== undefined) this.#dirty.add(g);
  }

  /**
   * Plans what changed since the last plan (or, with `all`, everything). Does not change the
   * planner's state, unless `keep` is set: then the placements stay applied, for a planner that
   * is thrown away after one plan (`schedule()` does that).
   */
  plan(options: { all?: boolean; keep?: boolean } = {}): Plan {
    const groups =
      options.all === true
        ? [...this.#groups.values()]
        : [...this.#dirty, ...(this.#capacityChanged ? this.#waiting : [])];
    this.#dirty.clear();
    this.#capacityChanged = false;
    const unique = new Set(groups);
    const stop: PlannedStop[] = [];
    const needs: Need[] = [];
    const unplaced: Unplaced[] = [];
    for (const g of unique) {
      this.#waiting.delete(g);
      this.#reconcile(g, stop, needs, unplaced);
    }
    needs.sort(byPlacementOrder);
    const start: PlannedStart[] = [];
    const held: number[] = [];
    this.#placer.placeAll(needs, start, held, (need, placed) => {
      if (placed < need.count) {
        unplaced.push(
          describeUnplaced(this.#cluster, need, need.count - placed, this.#placer.rejections()),
        );
        this.#waiting.add(need.group);
      }
    });
    if (options.keep === true) return { start, stop, unplaced };
    // Placements are tentative: give back what they took.
    const c = this.#cluster;
    for (let i = 0; i < held.length; i++) {
      const h = held[i] as number;
      const s = start[i] as PlannedStart;
      c.add(h, -s.resources.cpu, -s.resources.memory);
      this.#placer.touch(h, false);
    }
    return { start, stop, unplaced };
  }

  /**
   * Loads a whole snapshot. With `frozen`, the planner is for one plan only (`schedule()` does
   * that): jobs are not indexed by id or host, which makes loading a million of them about twice
   * as fast, and any later change throws `FLOTILLA_SCHEDULER_INVALID_OPTIONS`.
   */
  load(
    snapshot: {
      hosts: readonly HostSnapshot[];
      jobs: readonly JobSnapshot[];
      formations: readonly Formation[];
    },
    options: { frozen?: boolean } = {},
  ): void {
    for (const h of snapshot.hosts) this.setHost(h);
    for (const f of snapshot.formations) this.setFormation(f);
    if (options.frozen !== true) {
      for (const j of snapshot.jobs) this.setJob(j);
      return;
    }
    for (const job of snapshot.jobs) {
      const group = this.#group(job.app, job.release, job.type);
      const entry: JobEntry = { job, held: -1, group, gi: group.jobs.length, hi: -1 };
      group.jobs.push(entry);
      this.#hold(entry);
      if (COUNTED.has(job.state)) this.#dirty.add(group);
    }
    this.#frozen = true;
  }

  #thaw(): void {
    if (this.#frozen) {
      throw new SchedulerError(
        SchedulerErrorCodes.INVALID_OPTIONS,
        'this planner was loaded frozen, for one plan: create a new Planner to keep one current',
      );
    }
  }

  #group(app: string, release: string, type: string): Group {
    const last = this.#lastGroup;
    if (
      last !== undefined &&
      last.app === app &&
      last.release === release &&
      last.type === type &&
      !last.gone
    ) {
      return last;
    }
    // Nested maps: no key string is built (and hashed) per lookup.
    let releases = this.#byApp.get(app);
    if (releases === undefined) this.#byApp.set(app, (releases = new Map()));
    let types = releases.get(release);
    if (types === undefined) releases.set(release, (types = new Map()));
    let g = types.get(type);
    if (g === undefined) {
      const key = groupKey(app, release, type);
      g = {
        key,
        app,
        release,
        type,
        spec: undefined,
        signature: '',
        jobs: [],
        gone: false,
        awaitingUp: false,
      };
      types.set(type, g);
      this.#groups.set(key, g);
    }
    this.#lastGroup = g;
    return g;
  }

  #setSpec(app: string, release: string, type: string, spec: ProcessSpec | undefined): void {
    const g = this.#group(app, release, type);
    g.spec = spec;
    g.signature = constraintSignature(spec?.constraints);
    if (spec?.omni === true) this.#omni.add(g);
    else this.#omni.delete(g);
    this.#dirty.add(g);
    this.#forgetIfEmpty(g);
  }

  #forgetIfEmpty(g: Group): void {
    if (g.spec === undefined && g.jobs.length === 0) {
      this.#groups.delete(g.key);
      g.gone = true;
      const releases = this.#byApp.get(g.app);
      const types = releases?.get(g.release);
      types?.delete(g.type);
      if (types?.size === 0) releases?.delete(g.release);
      if (releases?.size === 0) this.#byApp.delete(g.app);
      this.#dirty.delete(g);
      this.#waiting.delete(g);
      this.#omni.delete(g);
    }
  }

  #hold(e: JobEntry): void {
    if (e.held >= 0 || !HOLDING.has(e.job.state)) return;
    const h = this.#cluster.index.get(e.job.hostId);
    if (h === undefined) return;
    e.held = h;
    this.#cluster.add(h, e.job.resources.cpu, e.job.resources.memory);
    this.#placer.touch(h, true);
  }

  #release(e: JobEntry): void {
    if (e.held < 0) return;
    const h = e.held;
    e.held = -1;
    this.#cluster.add(h, -e.job.resources.cpu, -e.job.resources.memory);
    this.#placer.touch(h, false);
    this.#capacityChanged = true;
  }

  #reconcile(g: Group, stop: PlannedStop[], needs: Need[], unplaced: Unplaced[]): void {
    const c = this.#cluster;
    const spec = g.spec;
    const kept: JobEntry[] = [];
    const draining: JobEntry[] = [];
    g.awaitingUp = false;
    for (const e of g.jobs) {
      if (!COUNTED.has(e.job.state)) continue;
      const standing = this.#standing(g, e.job.hostId);
      if (standing === 'keep') kept.push(e);
      else if (standing === 'draining') draining.push(e);
      else stop.push({ jobId: e.job.id, reason: standing });
    }
    if (spec === undefined || spec.omni === true) {
      // No formation: nothing to keep serving. Omni: one per eligible host, none to move.
      for (const e of draining) stop.push({ jobId: e.job.id, reason: 'host-draining' });
      if (spec === undefined) return;
      draining.length = 0;
    }
    const hosts = spec.omni === true ? c.eligible(g.signature, spec.constraints).length : 1;
    const wanted = spec.count * hosts;
    // `!(<=)`: a NaN or infinite count is over the limit too.
    if (!(wanted <= this.#maxJobs)) {
      const missing = Math.max(0, wanted - kept.length);
      unplaced.push(describeOverLimit(g, spec, wanted, missing, this.#maxJobs, hosts));
      return;
    }
    if (spec.omni === true) {
      const byHost = new Map<number, JobEntry[]>();
      for (const e of kept) {
        const h = c.index.get(e.job.hostId) as number;
        let list = byHost.get(h);
        if (list === undefined) byHost.set(h, (list = []));
        list.push(e);
      }
      const perHost = new Map<number, number>();
      for (const h of c.eligible(g.signature, spec.constraints)) {
        const here = byHost.get(h) ?? [];
        const surplus = here.length - spec.count;
        if (surplus > 0) {
          here.sort(newestFirst);
          for (const e of here.splice(0, surplus))
            stop.push({ jobId: e.job.id, reason: 'scaled-down' });
        }
        perHost.set(h, here.length);
        if (surplus < 0) needs.push({ group: g, spec, count: -surplus, perHost, host: h });
      }
      return;
    }
    const surplus = kept.length - spec.count;
    if (surplus > 0) {
      kept.sort(newestFirst);
      for (const e of kept.splice(0, surplus))
        stop.push({ jobId: e.job.id, reason: 'scaled-down' });
    }
    if (draining.length > 0) this.#moveOffDraining(g, spec, kept, draining, stop);
    if (surplus < 0) {
      const perHost = new Map<number, number>();
      for (const e of kept) {
        const h = c.index.get(e.job.hostId) as number;
        perHost.set(h, (perHost.get(h) ?? 0) + 1);
      }
      needs.push({ group: g, spec, count: -surplus, perHost });
    }
  }

  /**
   * A drain moves jobs without a gap: a job on a draining host is stopped once the group has
   * `count` jobs up elsewhere (its replacement is placed as a missing job meanwhile), so an app
   * whose only dyno is on the drained host keeps serving. A replacement that cannot be placed
   * (no room) leaves the job where it is, reported unplaced, until the drain's deadline (a
   * host `drainForced`): then it is stopped anyway, reason `drain-deadline`.
   */
  #moveOffDraining(
    g: Group,
    spec: ProcessSpec,
    kept: readonly JobEntry[],
    draining: JobEntry[],
    stop: PlannedStop[],
  ): void {
    const c = this.#cluster;
    const upElsewhere = kept.filter((e) => e.job.state === 'up').length;
    const serving: JobEntry[] = [];
    for (const e of draining) {
      // Not up yet: it serves no one, and goes at once.
      if (e.job.state === 'up') serving.push(e);
      else stop.push({ jobId: e.job.id, reason: 'host-draining' });
    }
    const forced = (e: JobEntry): boolean =>
      (c.hosts[c.index.get(e.job.hostId) as number] as HostSnapshot).drainForced === true;
    const stoppable = Math.max(0, upElsewhere + serving.length - spec.count);
    // Those past their deadline first: the stops the replacements allow are spent on them,
    // and a job on a host still within its deadline keeps serving.
    serving.sort((a, b) => Number(forced(b)) - Number(forced(a)) || newestFirst(a, b));
    let waiting = 0;
    for (let i = 0; i < serving.length; i++) {
      const e = serving[i] as JobEntry;
      if (i < stoppable) stop.push({ jobId: e.job.id, reason: 'host-draining' });
      else if (forced(e)) stop.push({ jobId: e.job.id, reason: 'drain-deadline' });
      else waiting++;
    }
    g.awaitingUp = waiting > 0 && upElsewhere < spec.count;
  }
}

/** Keys that no choice of names can make collide (names may hold any character). */
function groupKey(app: string, release: string, type: string): string {
  return JSON.stringify([app, release, type]);
}

function formationKey(app: string, release: string): string {
  return JSON.stringify([app, release]);
}

/** Options with their defaults, or `FLOTILLA_SCHEDULER_INVALID_OPTIONS` naming the bad one. */
function checkOptions(options: PlannerOptions): {
  strategy: Strategy;
  seed: number;
  spreadTag: string;
  plugins: readonly PlacementPlugin[];
  maxJobsPerType: number;
} {
  const fail = (what: string): SchedulerError =>
    new SchedulerError(SchedulerErrorCodes.INVALID_OPTIONS, what);
  const {
    strategy = 'spread',
    seed = 0,
    spreadTag = 'zone',
    plugins = [],
    maxJobsPerType = DEFAULT_MAX_JOBS_PER_TYPE,
  } = options;
  if (strategy !== 'spread' && strategy !== 'binpack')
    throw fail(`strategy must be 'spread' or 'binpack', got ${shown(strategy)}`);
  if (!Number.isFinite(seed)) throw fail(`seed must be a finite number, got ${shown(seed)}`);
  if (typeof spreadTag !== 'string' || spreadTag === '')
    throw fail(`spreadTag must be a non-empty string, got ${shown(spreadTag)}`);
  if (!Number.isSafeInteger(maxJobsPerType) || maxJobsPerType < 0)
    throw fail(`maxJobsPerType must be a whole number >= 0, got ${shown(maxJobsPerType)}`);
  if (!Array.isArray(plugins)) throw fail(`plugins must be an array, got ${shown(plugins)}`);
  for (let i = 0; i < plugins.length; i++) {
    const p = plugins[i] as PlacementPlugin | null | undefined;
    if (
      typeof p?.name !== 'string' ||
      (p.filter === undefined && p.score === undefined) ||
      (p.filter !== undefined && typeof p.filter !== 'function') ||
      (p.score !== undefined && typeof p.score !== 'function')
    ) {
      throw fail(`plugins[${i}] needs a name and a filter or a score function`);
    }
  }
  return { strategy, seed, spreadTag, plugins, maxJobsPerType };
}

function newestFirst(a: JobEntry, b: JobEntry): number {
  const ta = a.job.createdAt ?? -Infinity;
  const tb = b.job.createdAt ?? -Infinity;
  if (ta !== tb) return tb - ta;
  return a.job.id < b.job.id ? 1 : a.job.id > b.job.id ? -1 : 0;
}

function dominant(spec: ProcessSpec): number {
  return Math.max(spec.resources.cpu / 1000, spec.resources.memory / 1024);
}

function byPlacementOrder(a: Need, b: Need): number {
  const ca = a.group.signature === '' ? 1 : 0;
  const cb = b.group.signature === '' ? 1 : 0;
  if (ca !== cb) return ca - cb;
  const d = dominant(b.spec) - dominant(a.spec);
  if (d !== 0) return d;
  return a.group.key < b.group.key
    ? -1
    : a.group.key > b.group.key
      ? 1
      : (a.host ?? 0) - (b.host ?? 0);
}
