import type { Cluster } from './cluster.js';
import { placeInOrder, startOf, type Need, type Placer } from './placement.js';
import type { HostView, PlacementPlugin, PlacementRequest } from '../plugins.js';
import type { HostSnapshot, PlannedStart, Strategy } from '../types.js';

/**
 * The general path when plugins are given: every eligible host is checked for every job,
 * built-in filters first, then the plugins; the highest plugin score wins, and the built-in
 * preference of the strategy breaks ties.
 */
export class PluginPlacer implements Placer {
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

  placeAll(
    needs: readonly Need[],
    out: PlannedStart[],
    held: number[],
    done: (need: Need, placed: number) => void,
  ): void {
    placeInOrder((n, o, h) => this.#place(n, o, h), needs, out, held, done);
  }

  #place(need: Need, out: PlannedStart[], held: number[]): number {
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
