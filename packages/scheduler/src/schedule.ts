import { SchedulerError, SchedulerErrorCodes } from './errors.js';
import { Cluster, constraintSignature } from './internal/cluster.js';
import { FitTree } from './internal/fit-tree.js';
import { HostHeap } from './internal/host-heap.js';
import { validateSnapshot } from './internal/validate.js';
import type { HostView, PlacementPlugin, PlacementRequest } from './plugins.js';
import type {
  ClusterSnapshot,
  Formation,
  JobSnapshot,
  Plan,
  PlannedStart,
  PlannedStop,
  ProcessSpec,
  Unplaced,
} from './types.js';

/** Placement strategies. */
export type Strategy = 'spread' | 'binpack';

/** Options of {@link schedule}. */
export interface ScheduleOptions {
  /**
   * `spread` (default): a process type's jobs spread as evenly as eligible hosts allow, first
   * across values of the spread tag, then across hosts, least loaded first. `binpack`: as few
   * hosts as possible (first fit, decreasing sizes, over hosts in best-fit order).
   */
  readonly strategy?: Strategy;
  /** Tie-break seed: the same snapshot and seed give the same plan (default 0). */
  readonly seed?: number;
  /** The host tag spread across first (default `'zone'`). */
  readonly spreadTag?: string;
  /** Extra filter and score steps; see {@link PlacementPlugin}. */
  readonly plugins?: readonly PlacementPlugin[];
  /** Skip input validation (the Scheduler service validates records as they arrive). */
  readonly trusted?: boolean;
}

const COUNTED = new Set(['pending', 'starting', 'up']);
const HOLDING = new Set(['pending', 'starting', 'up', 'stopping']);

interface Group {
  readonly key: string;
  readonly formation: Formation;
  readonly type: string;
  readonly spec: ProcessSpec;
  readonly signature: string;
  readonly jobs: JobSnapshot[];
  /** Jobs of the group per host index (kept ones, then this plan's). */
  readonly perHost: Map<number, number>;
}

interface Need {
  readonly group: Group;
  /** Jobs to place. */
  readonly count: number;
  /** For omni groups: the host they must go on. */
  readonly host?: number;
}

/**
 * Plans what to start and stop so that the cluster runs what the formations declare: the
 * scheduler's pure core. No I/O, no timers, no randomness beyond `seed`.
 *
 * Reconcile: jobs on down or draining hosts, jobs of no formation and jobs on hosts that no
 * longer match their constraints are stopped (and replaced); each (app, release, type) is
 * scaled to its count, surplus stopping newest first; `omni` types run `count` jobs on every
 * eligible host. Placement then runs the strategy; jobs that fit nowhere come back in
 * `unplaced` with the reason.
 *
 * @throws {@link SchedulerError} `FLOTILLA_SCHEDULER_INVALID_SNAPSHOT` naming the bad field,
 * `FLOTILLA_SCHEDULER_INVALID_OPTIONS`.
 *
 * @example
 * ```ts
 * const plan = schedule(
 *   {
 *     hosts: [{ id: 'h1', tags: { zone: 'a' }, capacity: { cpu: 4000, memory: 8192 }, state: 'up' }],
 *     jobs: [],
 *     formations: [{ app: 'demo', release: 'v1',
 *       processes: { web: { count: 2, resources: { cpu: 500, memory: 512 } } } }],
 *   },
 *   { strategy: 'spread' },
 * );
 * plan.start; // [{ app: 'demo', release: 'v1', type: 'web', hostId: 'h1', ... } x 2]
 * ```
 */
export function schedule(snapshot: ClusterSnapshot, options: ScheduleOptions = {}): Plan {
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
  if (options.trusted !== true) validateSnapshot(snapshot);

  const cluster = new Cluster(snapshot.hosts, options.spreadTag ?? 'zone', options.seed ?? 0);
  const stop: PlannedStop[] = [];
  const groups = new Map<string, Group>();
  for (const formation of snapshot.formations) {
    for (const [type, spec] of Object.entries(formation.processes)) {
      const key = groupKey(formation.app, formation.release, type);
      groups.set(key, {
        key,
        formation,
        type,
        spec,
        signature: constraintSignature(spec.constraints),
        jobs: [],
        perHost: new Map(),
      });
    }
  }

  // 1. Existing jobs: what they hold, and which must stop whatever the counts say.
  for (const job of snapshot.jobs) {
    const h = cluster.index.get(job.hostId);
    const counted = COUNTED.has(job.state);
    if (h === undefined) {
      if (counted) stop.push({ jobId: job.id, reason: 'host-unknown' });
      continue;
    }
    if (HOLDING.has(job.state)) cluster.add(h, job.resources.cpu, job.resources.memory);
    if (!counted) continue;
    const hostState = (snapshot.hosts[h] as { state: string }).state;
    if (hostState === 'down') {
      stop.push({ jobId: job.id, reason: 'host-down' });
      continue;
    }
    if (hostState === 'draining') {
      stop.push({ jobId: job.id, reason: 'host-draining' });
      continue;
    }
    const group = groups.get(groupKey(job.app, job.release, job.type));
    if (group === undefined) {
      stop.push({ jobId: job.id, reason: 'no-formation' });
      continue;
    }
    if (!cluster.matches(h, group.spec.constraints)) {
      stop.push({ jobId: job.id, reason: 'constraint-mismatch' });
      continue;
    }
    group.jobs.push(job);
  }

  // 2. Counts: surplus stops newest first; deficits become needs.
  const needs: Need[] = [];
  for (const group of groups.values()) {
    if (group.spec.omni === true) {
      reconcileOmni(cluster, group, stop, needs);
      continue;
    }
    const surplus = group.jobs.length - group.spec.count;
    if (surplus > 0) {
      group.jobs.sort(newestFirst);
      for (const job of group.jobs.splice(0, surplus))
        stop.push({ jobId: job.id, reason: 'scaled-down' });
    }
    for (const job of group.jobs) {
      const h = cluster.index.get(job.hostId) as number;
      group.perHost.set(h, (group.perHost.get(h) ?? 0) + 1);
    }
    if (surplus < 0) needs.push({ group, count: -surplus });
  }

  // 3. Placement: constrained types first (fewer choices), then bigger jobs first.
  needs.sort(byPlacementOrder);
  const start: PlannedStart[] = [];
  const unplaced: Unplaced[] = [];
  const placer =
    plugins.length > 0
      ? new PluginPlacer(cluster, strategy, plugins)
      : strategy === 'spread'
        ? new SpreadPlacer(cluster)
        : new BinpackPlacer(cluster);
  for (const need of needs) {
    const placed = placer.place(need, start);
    if (placed < need.count)
      unplaced.push(describeUnplaced(cluster, need, need.count - placed, placer.rejections()));
  }
  return { start, stop, unplaced };
}

function groupKey(app: string, release: string, type: string): string {
  return `${app}\u0000${release}\u0000${type}`;
}

function newestFirst(a: JobSnapshot, b: JobSnapshot): number {
  const ta = a.createdAt ?? -Infinity;
  const tb = b.createdAt ?? -Infinity;
  if (ta !== tb) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function dominant(spec: ProcessSpec): number {
  return Math.max(spec.resources.cpu / 1000, spec.resources.memory / 1024);
}

function byPlacementOrder(a: Need, b: Need): number {
  const ca = a.group.signature === '' ? 1 : 0;
  const cb = b.group.signature === '' ? 1 : 0;
  if (ca !== cb) return ca - cb;
  const d = dominant(b.group.spec) - dominant(a.group.spec);
  if (d !== 0) return d;
  return a.group.key < b.group.key
    ? -1
    : a.group.key > b.group.key
      ? 1
      : (a.host ?? 0) - (b.host ?? 0);
}

function reconcileOmni(cluster: Cluster, group: Group, stop: PlannedStop[], needs: Need[]): void {
  const byHost = new Map<number, JobSnapshot[]>();
  for (const job of group.jobs) {
    const h = cluster.index.get(job.hostId) as number;
    let list = byHost.get(h);
    if (list === undefined) byHost.set(h, (list = []));
    list.push(job);
  }
  for (const h of cluster.eligible(group.signature, group.spec.constraints)) {
    const here = byHost.get(h) ?? [];
    const surplus = here.length - group.spec.count;
    if (surplus > 0) {
      here.sort(newestFirst);
      for (const job of here.splice(0, surplus))
        stop.push({ jobId: job.id, reason: 'scaled-down' });
    }
    group.perHost.set(h, here.length);
    if (surplus < 0) needs.push({ group, count: -surplus, host: h });
  }
}

function startOf(cluster: Cluster, group: Group, h: number): PlannedStart {
  return {
    app: group.formation.app,
    release: group.formation.release,
    type: group.type,
    hostId: (cluster.hosts[h] as { id: string }).id,
    resources: group.spec.resources,
  };
}

function describeUnplaced(
  cluster: Cluster,
  need: Need,
  count: number,
  rejections: ReadonlyMap<string, number>,
): Unplaced {
  const { group } = need;
  const base = {
    app: group.formation.app,
    release: group.formation.release,
    type: group.type,
    count,
  };
  const { cpu, memory } = group.spec.resources;
  const eligible = cluster.eligible(group.signature, group.spec.constraints);
  if (eligible.length === 0) {
    const wanted = group.spec.constraints ?? {};
    return {
      ...base,
      reason: 'no-matching-host',
      message: `no up host has the tags ${JSON.stringify(wanted)}: tag a host or change the constraints`,
    };
  }
  let bestCpu = 0;
  let bestMem = 0;
  const hosts = need.host === undefined ? eligible : [need.host];
  for (const h of hosts) {
    const c = (cluster.capCpu[h] as number) - (cluster.usedCpu[h] as number);
    const m = (cluster.capMem[h] as number) - (cluster.usedMem[h] as number);
    if (
      Math.min(c / Math.max(cpu, 1), m / Math.max(memory, 1)) >
      Math.min(bestCpu / Math.max(cpu, 1), bestMem / Math.max(memory, 1))
    ) {
      bestCpu = c;
      bestMem = m;
    }
  }
  const where =
    need.host === undefined
      ? `any of ${eligible.length} eligible hosts`
      : `host ${(cluster.hosts[need.host] as { id: string }).id}`;
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

interface Placer {
  /** Places up to `need.count` jobs, appending to `out`; returns how many. */
  place(need: Need, out: PlannedStart[]): number;
  rejections(): ReadonlyMap<string, number>;
}

const NO_REJECTIONS: ReadonlyMap<string, number> = new Map();

/** Places an omni need: its host or nothing. */
function placeOnHost(cluster: Cluster, need: Need, h: number, out: PlannedStart[]): number {
  const { cpu, memory } = need.group.spec.resources;
  let placed = 0;
  while (placed < need.count && cluster.fits(h, cpu, memory)) {
    cluster.add(h, cpu, memory);
    out.push(startOf(cluster, need.group, h));
    placed++;
  }
  need.group.perHost.set(h, (need.group.perHost.get(h) ?? 0) + placed);
  return placed;
}

/**
 * Spread: per zone, a heap of eligible hosts by load. Each job goes to the zone with the fewest
 * jobs of its group (among zones that still have a host without one), then to the least loaded
 * host there that has no job of the group yet, and only when every host of the zone has one, a
 * second round begins.
 */
class SpreadPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #indexes = new Map<string, { zones: number[]; heaps: HostHeap[] }>();

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  rejections(): ReadonlyMap<string, number> {
    return NO_REJECTIONS;
  }

  #index(group: Group): { zones: number[]; heaps: HostHeap[] } {
    let index = this.#indexes.get(group.signature);
    if (index !== undefined) return index;
    const c = this.#cluster;
    const eligible = c.eligible(group.signature, group.spec.constraints);
    const slotOf = new Map<number, number>();
    const zones: number[] = [];
    const sizes: number[] = [];
    for (const h of eligible) {
      const z = c.zone[h] as number;
      let slot = slotOf.get(z);
      if (slot === undefined) {
        slot = zones.length;
        slotOf.set(z, slot);
        zones.push(z);
        sizes.push(0);
      }
      sizes[slot] = (sizes[slot] as number) + 1;
    }
    const heaps = sizes.map((n) => new HostHeap(n));
    for (const h of eligible) {
      (heaps[slotOf.get(c.zone[h] as number) as number] as HostHeap).push(
        h,
        c.score(h),
        c.rank[h] as number,
      );
    }
    index = { zones, heaps };
    this.#indexes.set(group.signature, index);
    return index;
  }

  place(need: Need, out: PlannedStart[]): number {
    if (need.host !== undefined) return placeOnHost(this.#cluster, need, need.host, out);
    const c = this.#cluster;
    const { group } = need;
    const { cpu, memory } = group.spec.resources;
    const { zones, heaps } = this.#index(group);
    const zn = zones.length;
    const zoneCount = new Array<number>(zn).fill(0);
    const zoneRound = new Array<number>(zn).fill(0);
    const exhausted = new Array<boolean>(zn).fill(false);
    const aside: number[][] = Array.from({ length: zn }, () => []);
    const noFit: number[][] = Array.from({ length: zn }, () => []);
    const slotOfZone = new Map<number, number>();
    zones.forEach((z, i) => slotOfZone.set(z, i));
    for (const [h, n] of group.perHost) {
      const slot = slotOfZone.get(c.zone[h] as number);
      if (slot !== undefined) zoneCount[slot] = (zoneCount[slot] as number) + n;
    }

    let placed = 0;
    while (placed < need.count) {
      // The zone with the lowest round, then the fewest jobs of the group.
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
      while (heap.size > 0) {
        const stored = heap.peekScore();
        const cand = heap.pop();
        const current = c.score(cand);
        if (current > stored) {
          heap.push(cand, current, c.rank[cand] as number); // stale key: load grew elsewhere
          continue;
        }
        if ((group.perHost.get(cand) ?? 0) > round) {
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
          for (const u of used) heap.push(u, c.score(u), c.rank[u] as number);
          aside[z] = [];
        } else {
          exhausted[z] = true;
        }
        continue;
      }
      c.add(h, cpu, memory);
      group.perHost.set(h, (group.perHost.get(h) ?? 0) + 1);
      zoneCount[z] = (zoneCount[z] as number) + 1;
      (aside[z] as number[]).push(h);
      out.push(startOf(c, group, h));
      placed++;
    }
    for (let i = 0; i < zn; i++) {
      const heap = heaps[i] as HostHeap;
      for (const u of aside[i] as number[]) heap.push(u, c.score(u), c.rank[u] as number);
      for (const u of noFit[i] as number[]) heap.push(u, c.score(u), c.rank[u] as number);
    }
    return placed;
  }
}

/**
 * Binpack: first fit over hosts in best-fit order (hosts already in use, fullest first, then
 * empty hosts, largest first), with needs sorted biggest job first: first-fit decreasing. A
 * segment tree of free capacity finds the first host that fits in logarithmic time.
 */
class BinpackPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #trees = new Map<string, FitTree>();
  readonly #all: FitTree[] = [];
  #order: Int32Array | undefined;
  readonly #freeCpu: Float64Array;
  readonly #freeMem: Float64Array;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#freeCpu = new Float64Array(cluster.n);
    this.#freeMem = new Float64Array(cluster.n);
    for (let h = 0; h < cluster.n; h++) {
      this.#freeCpu[h] = (cluster.capCpu[h] as number) - (cluster.usedCpu[h] as number);
      this.#freeMem[h] = (cluster.capMem[h] as number) - (cluster.usedMem[h] as number);
    }
  }

  rejections(): ReadonlyMap<string, number> {
    return NO_REJECTIONS;
  }

  #preference(): Int32Array {
    if (this.#order !== undefined) return this.#order;
    const c = this.#cluster;
    const hosts = Array.from({ length: c.n }, (_, h) => h);
    const used = (h: number): boolean =>
      (c.usedCpu[h] as number) > 0 || (c.usedMem[h] as number) > 0;
    const size = (h: number): number =>
      (c.capCpu[h] as number) / 1000 + (c.capMem[h] as number) / 1024;
    hosts.sort((a, b) => {
      const ua = used(a);
      const ub = used(b);
      if (ua !== ub) return ua ? -1 : 1;
      if (ua) {
        const d = 1 - c.score(b) - (1 - c.score(a));
        if (d !== 0) return d;
      } else {
        const d = size(b) - size(a);
        if (d !== 0) return d;
      }
      return (c.rank[a] as number) - (c.rank[b] as number);
    });
    this.#order = Int32Array.from(hosts);
    return this.#order;
  }

  #tree(group: Group): FitTree {
    let tree = this.#trees.get(group.signature);
    if (tree === undefined) {
      const c = this.#cluster;
      const eligible = new Uint8Array(c.n);
      for (const h of c.eligible(group.signature, group.spec.constraints)) eligible[h] = 1;
      const order = this.#preference().filter((h) => eligible[h] === 1);
      tree = new FitTree(order, c.n, this.#freeCpu, this.#freeMem);
      this.#trees.set(group.signature, tree);
      this.#all.push(tree);
    }
    return tree;
  }

  place(need: Need, out: PlannedStart[]): number {
    const c = this.#cluster;
    const { group } = need;
    const { cpu, memory } = group.spec.resources;
    if (need.host !== undefined) {
      const placed = placeOnHost(c, need, need.host, out);
      this.#sync(need.host);
      return placed;
    }
    const tree = this.#tree(group);
    let placed = 0;
    while (placed < need.count) {
      const h = tree.first(cpu, memory);
      if (h < 0) break;
      c.add(h, cpu, memory);
      this.#sync(h);
      group.perHost.set(h, (group.perHost.get(h) ?? 0) + 1);
      out.push(startOf(c, group, h));
      placed++;
    }
    return placed;
  }

  #sync(h: number): void {
    const c = this.#cluster;
    const fc = (c.capCpu[h] as number) - (c.usedCpu[h] as number);
    const fm = (c.capMem[h] as number) - (c.usedMem[h] as number);
    this.#freeCpu[h] = fc;
    this.#freeMem[h] = fm;
    for (const tree of this.#all) tree.update(h, fc, fm);
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

  place(need: Need, out: PlannedStart[]): number {
    const c = this.#cluster;
    const { group } = need;
    const { cpu, memory } = group.spec.resources;
    const request: PlacementRequest = {
      app: group.formation.app,
      release: group.formation.release,
      type: group.type,
      resources: group.spec.resources,
      constraints: group.spec.constraints ?? {},
    };
    const candidates =
      need.host === undefined ? c.eligible(group.signature, group.spec.constraints) : [need.host];
    const zoneCount = new Map<number, number>();
    for (const [h, n] of group.perHost)
      zoneCount.set(c.zone[h] as number, (zoneCount.get(c.zone[h] as number) ?? 0) + n);
    this.#rejected.clear();
    let placed = 0;
    while (placed < need.count) {
      let best = -1;
      let bestScore = -Infinity;
      let bestKey: number[] = [];
      for (const h of candidates) {
        if (!c.fits(h, cpu, memory)) continue;
        const view: HostView = {
          host: c.hosts[h] as HostView['host'],
          used: { cpu: c.usedCpu[h] as number, memory: c.usedMem[h] as number },
          sameGroup: group.perHost.get(h) ?? 0,
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
      group.perHost.set(best, (group.perHost.get(best) ?? 0) + 1);
      zoneCount.set(c.zone[best] as number, (zoneCount.get(c.zone[best] as number) ?? 0) + 1);
      out.push(startOf(c, group, best));
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
