import type { Cluster } from './cluster.js';
import { FitTree } from './fit-tree.js';
import { NO_REJECTIONS, placeOnHost, startOf, type Need, type Placer } from './placement.js';
import type { PlannedStart, ProcessSpec } from '../types.js';

/**
 * Binpack: first fit over hosts in best-fit order (hosts already in use, fullest first, then
 * empty hosts, largest first), biggest jobs first, and aware of both dimensions.
 *
 * A host filled with one shape of job fills one dimension and strands the other: memory-heavy
 * jobs placed group after group leave CPU idle on hosts whose memory is gone (Tetris, Grandl
 * et al. 2014). So jobs are split into CPU-heavy and memory-heavy against the cluster's own
 * ratio of memory to CPU, each kind queued biggest first, and the two queues are merged job by
 * job: the next job is of the kind that the host of the last placement has more room for, in
 * shares of its capacity. With first fit that host is the one being filled, and it gets what
 * it lacks. Omni needs go first (they have one host and no choice), then constrained types
 * (fewer hosts to choose from), then the rest.
 *
 * A segment tree of free capacity per constraint set finds the first host that fits. Hosts
 * only fill up during a plan, so the first fit of a shape never moves back: each shape starts
 * its search where its last job went, and most placements cost one check of that host. (A
 * tree of per-dimension maxima can say "something fits below" when no single host does, which
 * made a plain descent for mixed shapes cost hundreds of nodes per job.)
 */
export class BinpackPlacer implements Placer {
  readonly #cluster: Cluster;
  readonly #trees = new Map<string, FitTree>();
  /** MiB per millicore over up hosts; 0 when unknown (recomputed after `reset`). */
  #ratio = 0;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  rejections(): ReadonlyMap<string, number> {
    return NO_REJECTIONS;
  }

  reset(): void {
    this.#trees.clear();
    this.#ratio = 0;
  }

  touch(h: number, _grew?: boolean): void {
    if (this.#trees.size === 0) return;
    const c = this.#cluster;
    const fc = (c.capCpu[h] as number) - (c.usedCpu[h] as number);
    const fm = (c.capMem[h] as number) - (c.usedMem[h] as number);
    for (const tree of this.#trees.values()) tree.update(h, fc, fm);
  }

  /** Memory per millicore over up hosts: what makes a job CPU-heavy or memory-heavy. */
  #memPerCpu(): number {
    if (this.#ratio > 0) return this.#ratio;
    const c = this.#cluster;
    let cpu = 0;
    let mem = 0;
    for (let h = 0; h < c.n; h++) {
      if (c.up[h] !== 1) continue;
      cpu += c.capCpu[h] as number;
      mem += c.capMem[h] as number;
    }
    this.#ratio = cpu > 0 && mem > 0 ? mem / cpu : 1;
    return this.#ratio;
  }

  #tree(signature: string, spec: ProcessSpec): FitTree {
    let tree = this.#trees.get(signature);
    if (tree === undefined) {
      const c = this.#cluster;
      const hosts = Array.from(c.eligible(signature, spec.constraints));
      const used = (h: number): boolean =>
        (c.usedCpu[h] as number) > 0 || (c.usedMem[h] as number) > 0;
      const ratio = this.#memPerCpu();
      const size = (h: number): number => (c.capCpu[h] as number) + (c.capMem[h] as number) / ratio;
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

  placeAll(
    needs: readonly Need[],
    out: PlannedStart[],
    held: number[],
    done: (need: Need, placed: number) => void,
  ): void {
    const c = this.#cluster;
    const placed = new Array<number>(needs.length).fill(0);
    // Omni needs first: each has one host and no choice.
    for (let i = 0; i < needs.length; i++) {
      const need = needs[i] as Need;
      if (need.host === undefined) continue;
      placed[i] = placeOnHost(c, need, need.host, out, held);
      this.touch(need.host, true);
    }
    // Then constrained types (fewer hosts to choose from), then the rest.
    const ratio = this.#memPerCpu();
    const size = (i: number): number => {
      const r = (needs[i] as Need).spec.resources;
      return Math.max(r.cpu, r.memory / ratio);
    };
    const run: Run = { needs, placed, out, held, cursors: [], shapes: new Map(), last: -1 };
    for (const constrained of [true, false]) {
      const cpuHeavy: number[] = [];
      const memHeavy: number[] = [];
      for (let i = 0; i < needs.length; i++) {
        const need = needs[i] as Need;
        if (need.host !== undefined || (need.group.signature !== '') !== constrained) continue;
        const r = need.spec.resources;
        (r.cpu >= r.memory / ratio ? cpuHeavy : memHeavy).push(i);
      }
      // Biggest first; the planner's order breaks ties (sort is stable).
      cpuHeavy.sort((a, b) => size(b) - size(a));
      memHeavy.sort((a, b) => size(b) - size(a));
      this.#merge(run, cpuHeavy, memHeavy, size);
    }
    for (let i = 0; i < needs.length; i++) done(needs[i] as Need, placed[i] as number);
  }

  /**
   * Places two queues of needs (indices into `run.needs`) job by job. The next job comes from
   * the kind that the host of the last placement has more room for, in shares of its capacity:
   * with first fit that host is the one being filled, and it gets what it lacks.
   */
  #merge(
    run: Run,
    cpuHeavy: readonly number[],
    memHeavy: readonly number[],
    size: (i: number) => number,
  ): void {
    const c = this.#cluster;
    const { needs, placed, out, held, cursors, shapes } = run;
    // The shape's cursor and the tree of each need, set when it comes up.
    const slots = new Map<number, { cursor: number; tree: FitTree }>();
    let a = 0;
    let b = 0;
    while (a < cpuHeavy.length || b < memHeavy.length) {
      let fromCpu = b >= memHeavy.length;
      if (!fromCpu && a < cpuHeavy.length) {
        const h = run.last;
        fromCpu =
          h < 0
            ? size(cpuHeavy[a] as number) >= size(memHeavy[b] as number)
            : share(c.capCpu[h] as number, c.usedCpu[h] as number) >=
              share(c.capMem[h] as number, c.usedMem[h] as number);
      }
      const i = (fromCpu ? cpuHeavy[a] : memHeavy[b]) as number;
      const need = needs[i] as Need;
      const { cpu, memory } = need.spec.resources;
      let slot = slots.get(i);
      if (slot === undefined) {
        // Hosts only fill up during a plan, so the first fit of a shape never moves back: each
        // shape (per constraint set) remembers where its last job went and searches from there.
        const key = JSON.stringify([need.group.signature, cpu, memory]);
        let cursor = shapes.get(key);
        if (cursor === undefined) {
          cursor = cursors.length;
          cursors.push(0);
          shapes.set(key, cursor);
        }
        slot = { cursor, tree: this.#tree(need.group.signature, need.spec) };
        slots.set(i, slot);
      }
      const n = placed[i] as number;
      const at =
        n < need.count ? slot.tree.firstFrom(cursors[slot.cursor] as number, cpu, memory) : -1;
      if (at < 0) {
        // Done, or nothing fits (and nothing will, so the shape's next search is skipped too).
        if (n < need.count) cursors[slot.cursor] = Number.MAX_SAFE_INTEGER;
        if (fromCpu) a++;
        else b++;
        continue;
      }
      cursors[slot.cursor] = at;
      const h = slot.tree.hostAt(at);
      run.last = h;
      c.add(h, cpu, memory);
      this.touch(h, true);
      need.perHost.set(h, (need.perHost.get(h) ?? 0) + 1);
      out.push(startOf(c, need, h));
      held.push(h);
      placed[i] = n + 1;
    }
  }
}

/** The state of one `placeAll`. */
interface Run {
  readonly needs: readonly Need[];
  readonly placed: number[];
  readonly out: PlannedStart[];
  readonly held: number[];
  /** First-fit position of each shape so far. */
  readonly cursors: number[];
  /** Cursor of each shape: constraint set, CPU and memory. */
  readonly shapes: Map<string, number>;
  /** Host of the last placement, or -1. */
  last: number;
}

/** The free share of a dimension (0 when the host has none of it). */
function share(capacity: number, used: number): number {
  return capacity > 0 ? (capacity - used) / capacity : 0;
}
