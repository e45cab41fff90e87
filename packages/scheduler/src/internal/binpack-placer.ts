import type { Cluster } from './cluster.js';
import { FitTree } from './fit-tree.js';
import { NO_REJECTIONS, placeOnHost, startOf, type Need, type Placer } from './placement.js';
import type { PlannedStart, ProcessSpec } from '../types.js';

/**
 * Binpack: first fit over hosts in best-fit order (hosts already in use, fullest first, then
 * empty hosts, largest first), with needs sorted biggest job first: first-fit decreasing. A
 * segment tree of free capacity per constraint set finds the first host that fits in
 * logarithmic time.
 */
export class BinpackPlacer implements Placer {
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
