import type { Cluster } from './cluster.js';
import { HostHeap } from './host-heap.js';
import {
  NO_REJECTIONS,
  placeInOrder,
  placeOnHost,
  startOf,
  type Need,
  type Placer,
} from './placement.js';
import type { PlannedStart, ProcessSpec } from '../types.js';

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
export class SpreadPlacer implements Placer {
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
