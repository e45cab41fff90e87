import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { Cluster, constraintSignature } from './internal/cluster.js';
import { FitTree } from './internal/fit-tree.js';
import { HostHeap } from './internal/host-heap.js';
import type { HostView, PlacementPlugin, PlacementRequest } from './plugins.js';
import type {
  Formation,
  HostSnapshot,
  JobSnapshot,
  Plan,
  PlannedStart,
  PlannedStop,
  ProcessSpec,
  Unplaced,
} from './types.js';

/** Placement strategies. */
export type Strategy = 'spread' | 'binpack';

/** Options of a {@link Planner} (and of `schedule`). */
export interface PlannerOptions {
  /**
   * `spread` (default): a process type's jobs spread as evenly as eligible hosts allow, first
   * across values of the spread tag, then across hosts, least loaded first. `binpack`: as few
   * hosts as possible (first fit, decreasing sizes, over hosts in best-fit order).
   */
  readonly strategy?: Strategy;
  /** Tie-break seed: the same inputs in the same order and seed give the same plan (default 0). */
  readonly seed?: number;
  /** The host tag spread across first (default `'zone'`). */
  readonly spreadTag?: string;
  /** Extra filter and score steps; see {@link PlacementPlugin}. */
  readonly plugins?: readonly PlacementPlugin[];
}

const COUNTED = new Set(['pending', 'starting', 'up']);
const HOLDING = new Set(['pending', 'starting', 'up', 'stopping']);

interface JobEntry {
  job: JobSnapshot;
  /** Host slot the job's resources are held on, or -1. */
  held: number;
  group: Group;
  /** Position in `group.jobs`. */
  gi: number;
  /** Position in its host's list of jobs. */
  hi: number;
}

interface Group {
  readonly key: string;
  readonly app: string;
  readonly release: string;
  readonly type: string;
  spec: ProcessSpec | undefined;
  signature: string;
  readonly jobs: JobEntry[];
}

interface Need {
  readonly group: Group;
  readonly spec: ProcessSpec;
  readonly count: number;
  /** Jobs of the group per host slot (kept ones; placements add to it). */
  readonly perHost: Map<number, number>;
  /** For omni groups: the host slot they must go on. */
  readonly host?: number;
}

interface Placer {
  /** Places up to `need.count` jobs, appending to `out` and `held`; returns how many. */
  place(need: Need, out: PlannedStart[], held: number[]): number;
  /** A host's usage changed; `grew` when it went up (spread sees growth lazily). */
  touch(h: number, grew: boolean): void;
  /** Hosts changed: drop indexes. */
  reset(): void;
  rejections(): ReadonlyMap<string, number>;
}

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
  readonly #formations = new Map<string, Formation>();
  readonly #dirty = new Set<Group>();
  /** Groups that could not place everything: retried when capacity appears. */
  readonly #waiting = new Set<Group>();
  readonly #omni = new Set<Group>();
  #capacityChanged = false;
  #lastGroup: Group | undefined;
  #frozen = false;

  constructor(options: PlannerOptions = {}) {
    const strategy = options.strategy ?? 'spread';
    if (strategy !== 'spread' && strategy !== 'binpack') {
      throw new SchedulerError(
        SchedulerErrorCodes.INVALID_OPTIONS,
        `strategy must be 'spread' or 'binpack', got ${JSON.stringify(strategy)}`,
      );
    }
    const plugins = options.plugins ?? [];
    for (const [i, p] of plugins.entries()) {
      if (typeof p?.name !== 'string' || (p.filter === undefined && p.score === undefined)) {
        throw new SchedulerError(
          SchedulerErrorCodes.INVALID_OPTIONS,
          `plugins[${i}] needs a name and a filter or a score function`,
        );
      }
    }
    this.#cluster = new Cluster(options.spreadTag ?? 'zone', options.seed ?? 0);
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
    const c = this.#cluster;
    const before = c.index.has(host.id) ? c.hosts[c.index.get(host.id) as number] : undefined;
    const h = c.setHost(host);
    // Jobs that arrived before their host now hold resources on it.
    const jobs = this.#jobsByHost.get(host.id);
    if (before === undefined && jobs !== undefined) {
      for (const e of jobs) this.#hold(e);
    }
    const changed =
      before === undefined ||
      before.state !== host.state ||
      before.capacity.cpu !== host.capacity.cpu ||
      before.capacity.memory !== host.capacity.memory ||
      JSON.stringify(before.tags ?? {}) !== JSON.stringify(host.tags ?? {});
    if (!changed) return;
    this.#placer.reset();
    for (const e of jobs ?? []) this.#dirty.add(e.group);
    for (const g of this.#omni) this.#dirty.add(g);
    if (host.state === 'up') this.#capacityChanged = true;
    void h;
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

  /** Adds or replaces a job (a new state, say). */
  setJob(job: JobSnapshot): void {
    this.#thaw();
    const prev = this.#jobs.size === 0 ? undefined : this.#jobs.get(job.id);
    if (prev !== undefined) {
      const sameGroup = prev.group.key === groupKey(job.app, job.release, job.type);
      const counted = COUNTED.has(prev.job.state) !== COUNTED.has(job.state);
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
    if (COUNTED.has(job.state)) this.#dirty.add(group);
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
    const key = `${formation.app}\u0000${formation.release}`;
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
    const key = `${app}\u0000${release}`;
    const before = this.#formations.get(key);
    if (before === undefined) return;
    this.#formations.delete(key);
    for (const type of Object.keys(before.processes)) this.#setSpec(app, release, type, undefined);
  }

  /** Marks a process type for planning again (after a commit of its placements failed). */
  invalidate(app: string, release: string, type: string): void {
    const g = this.#groups.get(groupKey(app, release, type));
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
    for (const g of unique) {
      this.#waiting.delete(g);
      this.#reconcile(g, stop, needs);
    }
    needs.sort(byPlacementOrder);
    const start: PlannedStart[] = [];
    const unplaced: Unplaced[] = [];
    const held: number[] = [];
    for (const need of needs) {
      const placed = this.#placer.place(need, start, held);
      if (placed < need.count) {
        unplaced.push(
          describeUnplaced(this.#cluster, need, need.count - placed, this.#placer.rejections()),
        );
        this.#waiting.add(need.group);
      }
    }
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
      this.#groups.get(last.key) === last
    ) {
      return last;
    }
    const key = groupKey(app, release, type);
    let g = this.#groups.get(key);
    if (g === undefined) {
      g = { key, app, release, type, spec: undefined, signature: '', jobs: [] };
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

  #reconcile(g: Group, stop: PlannedStop[], needs: Need[]): void {
    const c = this.#cluster;
    const spec = g.spec;
    const kept: JobEntry[] = [];
    for (const e of g.jobs) {
      if (!COUNTED.has(e.job.state)) continue;
      const h = c.index.get(e.job.hostId);
      if (h === undefined) {
        stop.push({ jobId: e.job.id, reason: 'host-unknown' });
        continue;
      }
      const state = (c.hosts[h] as HostSnapshot).state;
      if (state === 'down') {
        stop.push({ jobId: e.job.id, reason: 'host-down' });
        continue;
      }
      if (state === 'draining') {
        stop.push({ jobId: e.job.id, reason: 'host-draining' });
        continue;
      }
      if (spec === undefined) {
        stop.push({ jobId: e.job.id, reason: 'no-formation' });
        continue;
      }
      if (!c.matches(h, spec.constraints)) {
        stop.push({ jobId: e.job.id, reason: 'constraint-mismatch' });
        continue;
      }
      kept.push(e);
    }
    if (spec === undefined) return;
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
    if (surplus < 0) {
      const perHost = new Map<number, number>();
      for (const e of kept) {
        const h = c.index.get(e.job.hostId) as number;
        perHost.set(h, (perHost.get(h) ?? 0) + 1);
      }
      needs.push({ group: g, spec, count: -surplus, perHost });
    }
  }
}

function groupKey(app: string, release: string, type: string): string {
  return `${app}\u0000${release}\u0000${type}`;
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

function startOf(cluster: Cluster, need: Need, h: number): PlannedStart {
  return {
    app: need.group.app,
    release: need.group.release,
    type: need.group.type,
    hostId: (cluster.hosts[h] as HostSnapshot).id,
    resources: need.spec.resources,
  };
}

function describeUnplaced(
  cluster: Cluster,
  need: Need,
  count: number,
  rejections: ReadonlyMap<string, number>,
): Unplaced {
  const { group, spec } = need;
  const base = { app: group.app, release: group.release, type: group.type, count };
  const { cpu, memory } = spec.resources;
  const eligible = cluster.eligible(group.signature, spec.constraints);
  if (eligible.length === 0) {
    return {
      ...base,
      reason: 'no-matching-host',
      message: `no up host has the tags ${JSON.stringify(spec.constraints ?? {})}: tag a host or change the constraints`,
    };
  }
  let bestCpu = 0;
  let bestMem = 0;
  const room = (c: number, m: number): number =>
    Math.min(c / Math.max(cpu, 1), m / Math.max(memory, 1));
  const hosts = need.host === undefined ? eligible : [need.host];
  for (const h of hosts) {
    const c = (cluster.capCpu[h] as number) - (cluster.usedCpu[h] as number);
    const m = (cluster.capMem[h] as number) - (cluster.usedMem[h] as number);
    if (room(c, m) > room(bestCpu, bestMem)) {
      bestCpu = c;
      bestMem = m;
    }
  }
  const where =
    need.host === undefined
      ? `any of ${eligible.length} eligible hosts`
      : `host ${(cluster.hosts[need.host] as HostSnapshot).id}`;
  let rejected = '';
  if (rejections.size > 0) {
    const [name, n] = [...rejections.entries()].sort((a, b) => b[1] - a[1])[0] as [string, number];
    rejected = `; plugin ${name} rejected ${n} host checks`;
  }
  return {
    ...base,
    reason: 'no-capacity',
    message: `${count} job(s) need ${cpu} millicores and ${memory} MiB each; the roomiest of ${where} has ${bestCpu} millicores and ${bestMem} MiB free${rejected}: add capacity or lower the count`,
  };
}

const NO_REJECTIONS: ReadonlyMap<string, number> = new Map();

/** Places an omni need: its host or nothing. */
function placeOnHost(
  cluster: Cluster,
  need: Need,
  h: number,
  out: PlannedStart[],
  held: number[],
): number {
  const { cpu, memory } = need.spec.resources;
  let placed = 0;
  while (placed < need.count && cluster.fits(h, cpu, memory)) {
    cluster.add(h, cpu, memory);
    out.push(startOf(cluster, need, h));
    held.push(h);
    placed++;
  }
  need.perHost.set(h, (need.perHost.get(h) ?? 0) + placed);
  return placed;
}

interface SpreadIndex {
  /** Zone slot -> position in `heaps`. */
  readonly slotOf: Map<number, number>;
  readonly heaps: HostHeap[];
}

/**
 * Spread: per constraint set and zone, a heap of eligible hosts by load, kept current as loads
 * change. Each job goes to the zone with the fewest jobs of its group (among zones that still
 * have a host without one), then to the least loaded host there that has no job of the group
 * yet; only when every host of the zone has one does a second round begin.
 */
class SpreadPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #indexes = new Map<string, SpreadIndex>();
  readonly #scoreOf: (h: number) => number;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#scoreOf = (h) => cluster.score(h);
  }

  rejections(): ReadonlyMap<string, number> {
    return NO_REJECTIONS;
  }

  reset(): void {
    this.#indexes.clear();
  }

  touch(h: number, grew: boolean): void {
    if (grew || this.#indexes.size === 0) return;
    const c = this.#cluster;
    for (const index of this.#indexes.values()) {
      const slot = index.slotOf.get(c.zone[h] as number);
      if (slot === undefined) continue;
      const heap = index.heaps[slot] as HostHeap;
      if (heap.has(h)) heap.set(h, c.score(h), c.rank[h] as number);
    }
  }

  #index(signature: string, spec: ProcessSpec): SpreadIndex {
    let index = this.#indexes.get(signature);
    if (index !== undefined) return index;
    const c = this.#cluster;
    const eligible = c.eligible(signature, spec.constraints);
    const slotOf = new Map<number, number>();
    const heaps: HostHeap[] = [];
    for (const h of eligible) {
      const z = c.zone[h] as number;
      let slot = slotOf.get(z);
      if (slot === undefined) {
        slot = heaps.length;
        slotOf.set(z, slot);
        heaps.push(new HostHeap(16, c.n));
      }
      (heaps[slot] as HostHeap).set(h, c.score(h), c.rank[h] as number);
    }
    index = { slotOf, heaps };
    this.#indexes.set(signature, index);
    return index;
  }

  place(need: Need, out: PlannedStart[], held: number[]): number {
    const c = this.#cluster;
    if (need.host !== undefined) {
      return placeOnHost(c, need, need.host, out, held);
    }
    const { cpu, memory } = need.spec.resources;
    const { slotOf, heaps } = this.#index(need.group.signature, need.spec);
    const zn = heaps.length;
    const zoneCount = new Array<number>(zn).fill(0);
    const zoneRound = new Array<number>(zn).fill(0);
    const exhausted = new Array<boolean>(zn).fill(false);
    const aside: number[][] = Array.from({ length: zn }, () => []);
    const noFit: number[][] = Array.from({ length: zn }, () => []);
    const perHost = need.perHost;
    for (const [h, n] of perHost) {
      const slot = slotOf.get(c.zone[h] as number);
      if (slot !== undefined) zoneCount[slot] = (zoneCount[slot] as number) + n;
    }
    let placed = 0;
    while (placed < need.count) {
      let z = -1;
      for (let i = 0; i < zn; i++) {
        if (exhausted[i] === true) continue;
        if (
          z < 0 ||
          (zoneRound[i] as number) < (zoneRound[z] as number) ||
          ((zoneRound[i] as number) === (zoneRound[z] as number) &&
            (zoneCount[i] as number) < (zoneCount[z] as number))
        ) {
          z = i;
        }
      }
      if (z < 0) break;
      const heap = heaps[z] as HostHeap;
      const round = zoneRound[z] as number;
      let h = -1;
      for (;;) {
        const cand = heap.popValid(this.#scoreOf);
        if (cand < 0) break;
        if ((perHost.get(cand) ?? 0) > round) {
          (aside[z] as number[]).push(cand);
          continue;
        }
        if (!c.fits(cand, cpu, memory)) {
          (noFit[z] as number[]).push(cand);
          continue;
        }
        h = cand;
        break;
      }
      if (h < 0) {
        const used = aside[z] as number[];
        if (used.length > 0) {
          // Every host of the zone has a job of the group: start the next round.
          zoneRound[z] = round + 1;
          for (const u of used) heap.set(u, c.score(u), c.rank[u] as number);
          aside[z] = [];
        } else {
          exhausted[z] = true;
        }
        continue;
      }
      c.add(h, cpu, memory);
      perHost.set(h, (perHost.get(h) ?? 0) + 1);
      zoneCount[z] = (zoneCount[z] as number) + 1;
      (aside[z] as number[]).push(h);
      out.push(startOf(c, need, h));
      held.push(h);
      placed++;
    }
    for (let i = 0; i < zn; i++) {
      const heap = heaps[i] as HostHeap;
      for (const u of aside[i] as number[]) heap.set(u, c.score(u), c.rank[u] as number);
      for (const u of noFit[i] as number[]) heap.set(u, c.score(u), c.rank[u] as number);
    }
    // Other constraint sets' heaps see the hosts used here as more loaded when they pop them.
    return placed;
  }
}

/**
 * Binpack: first fit over hosts in best-fit order (hosts already in use, fullest first, then
 * empty hosts, largest first), with needs sorted biggest job first: first-fit decreasing. A
 * segment tree of free capacity per constraint set finds the first host that fits in
 * logarithmic time.
 */
class BinpackPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #trees = new Map<string, FitTree>();

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  rejections(): ReadonlyMap<string, number> {
    return NO_REJECTIONS;
  }

  reset(): void {
    this.#trees.clear();
  }

  touch(h: number, _grew?: boolean): void {
    if (this.#trees.size === 0) return;
    const c = this.#cluster;
    const fc = (c.capCpu[h] as number) - (c.usedCpu[h] as number);
    const fm = (c.capMem[h] as number) - (c.usedMem[h] as number);
    for (const tree of this.#trees.values()) tree.update(h, fc, fm);
  }

  #tree(signature: string, spec: ProcessSpec): FitTree {
    let tree = this.#trees.get(signature);
    if (tree === undefined) {
      const c = this.#cluster;
      const hosts = Array.from(c.eligible(signature, spec.constraints));
      const used = (h: number): boolean =>
        (c.usedCpu[h] as number) > 0 || (c.usedMem[h] as number) > 0;
      const size = (h: number): number =>
        (c.capCpu[h] as number) / 1000 + (c.capMem[h] as number) / 1024;
      const load = hosts.map((h) => c.score(h));
      const at = new Map(hosts.map((h, i) => [h, i]));
      hosts.sort((a, b) => {
        const ua = used(a);
        const ub = used(b);
        if (ua !== ub) return ua ? -1 : 1;
        const d = ua
          ? (load[at.get(b) as number] as number) - (load[at.get(a) as number] as number)
          : size(b) - size(a);
        if (d !== 0) return d;
        return (c.rank[a] as number) - (c.rank[b] as number);
      });
      const freeCpu = new Float64Array(c.n);
      const freeMem = new Float64Array(c.n);
      for (const h of hosts) {
        freeCpu[h] = (c.capCpu[h] as number) - (c.usedCpu[h] as number);
        freeMem[h] = (c.capMem[h] as number) - (c.usedMem[h] as number);
      }
      tree = new FitTree(hosts, c.n, freeCpu, freeMem);
      this.#trees.set(signature, tree);
    }
    return tree;
  }

  place(need: Need, out: PlannedStart[], held: number[]): number {
    const c = this.#cluster;
    const { cpu, memory } = need.spec.resources;
    if (need.host !== undefined) {
      const placed = placeOnHost(c, need, need.host, out, held);
      this.touch(need.host, true);
      return placed;
    }
    const tree = this.#tree(need.group.signature, need.spec);
    let placed = 0;
    while (placed < need.count) {
      const h = tree.first(cpu, memory);
      if (h < 0) break;
      c.add(h, cpu, memory);
      this.touch(h, true);
      need.perHost.set(h, (need.perHost.get(h) ?? 0) + 1);
      out.push(startOf(c, need, h));
      held.push(h);
      placed++;
    }
    return placed;
  }
}

/**
 * The general path when plugins are given: every eligible host is checked for every job,
 * built-in filters first, then the plugins; the highest plugin score wins, and the built-in
 * preference of the strategy breaks ties.
 */
class PluginPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #strategy: Strategy;
  readonly #plugins: readonly PlacementPlugin[];
  readonly #rejected = new Map<string, number>();

  constructor(cluster: Cluster, strategy: Strategy, plugins: readonly PlacementPlugin[]) {
    this.#cluster = cluster;
    this.#strategy = strategy;
    this.#plugins = plugins;
  }

  rejections(): ReadonlyMap<string, number> {
    return this.#rejected;
  }

  reset(): void {
    // No index to drop: every plan reads the cluster directly.
  }

  touch(): void {
    // No index to keep current.
  }

  place(need: Need, out: PlannedStart[], held: number[]): number {
    const c = this.#cluster;
    const { group, spec } = need;
    const { cpu, memory } = spec.resources;
    const request: PlacementRequest = {
      app: group.app,
      release: group.release,
      type: group.type,
      resources: spec.resources,
      constraints: spec.constraints ?? {},
    };
    const candidates =
      need.host === undefined ? c.eligible(group.signature, spec.constraints) : [need.host];
    const zoneCount = new Map<number, number>();
    for (const [h, n] of need.perHost) {
      zoneCount.set(c.zone[h] as number, (zoneCount.get(c.zone[h] as number) ?? 0) + n);
    }
    this.#rejected.clear();
    let placed = 0;
    while (placed < need.count) {
      let best = -1;
      let bestScore = -Infinity;
      let bestKey: number[] = [];
      for (const h of candidates) {
        if (!c.fits(h, cpu, memory)) continue;
        const view: HostView = {
          host: c.hosts[h] as HostSnapshot,
          used: { cpu: c.usedCpu[h] as number, memory: c.usedMem[h] as number },
          sameGroup: need.perHost.get(h) ?? 0,
          zone: c.zoneNames[c.zone[h] as number] as string,
        };
        let ok = true;
        let score = 0;
        for (const p of this.#plugins) {
          if (p.filter !== undefined) {
            const verdict = p.filter(view, request);
            if (verdict !== undefined && verdict !== true) {
              this.#rejected.set(p.name, (this.#rejected.get(p.name) ?? 0) + 1);
              ok = false;
              break;
            }
          }
          if (p.score !== undefined) score += p.score(view, request);
        }
        if (!ok) continue;
        // Built-in preference, smaller is better.
        const key =
          this.#strategy === 'spread'
            ? [
                zoneCount.get(c.zone[h] as number) ?? 0,
                view.sameGroup,
                c.score(h),
                c.rank[h] as number,
              ]
            : [bestFitKey(c, h, cpu, memory), c.rank[h] as number];
        if (best < 0 || score > bestScore || (score === bestScore && lexLess(key, bestKey))) {
          best = h;
          bestScore = score;
          bestKey = key;
        }
      }
      if (best < 0) break;
      c.add(best, cpu, memory);
      need.perHost.set(best, (need.perHost.get(best) ?? 0) + 1);
      zoneCount.set(c.zone[best] as number, (zoneCount.get(c.zone[best] as number) ?? 0) + 1);
      out.push(startOf(c, need, best));
      held.push(best);
      placed++;
    }
    return placed;
  }
}

/** Best fit: the host left with the least free capacity (dominant share) after placing. */
function bestFitKey(c: Cluster, h: number, cpu: number, memory: number): number {
  const capC = c.capCpu[h] as number;
  const capM = c.capMem[h] as number;
  const freeC = capC > 0 ? (capC - (c.usedCpu[h] as number) - cpu) / capC : 0;
  const freeM = capM > 0 ? (capM - (c.usedMem[h] as number) - memory) / capM : 0;
  return Math.min(freeC, freeM);
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x !== y) return x < y;
  }
  return false;
}
