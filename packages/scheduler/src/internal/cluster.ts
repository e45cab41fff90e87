import type { HostSnapshot } from '../types.js';
import { shuffledRanks } from './rng.js';

/**
 * The hosts of a snapshot in typed arrays, with their usage as the plan grows, and cached
 * lists of the up hosts that match each set of constraints.
 */
export class Cluster {
  readonly n: number;
  readonly hosts: readonly HostSnapshot[];
  readonly index = new Map<string, number>();
  readonly capCpu: Float64Array;
  readonly capMem: Float64Array;
  readonly usedCpu: Float64Array;
  readonly usedMem: Float64Array;
  readonly up: Uint8Array;
  /** Zone slot of each host (value of the spread tag), see {@link zoneNames}. */
  readonly zone: Int32Array;
  readonly zoneNames: string[] = [];
  /** Seeded tie-break rank of each host. */
  readonly rank: Int32Array;
  readonly #eligible = new Map<string, Int32Array>();

  constructor(hosts: readonly HostSnapshot[], spreadTag: string, seed: number) {
    const n = hosts.length;
    this.n = n;
    this.hosts = hosts;
    this.capCpu = new Float64Array(n);
    this.capMem = new Float64Array(n);
    this.usedCpu = new Float64Array(n);
    this.usedMem = new Float64Array(n);
    this.up = new Uint8Array(n);
    this.zone = new Int32Array(n);
    this.rank = shuffledRanks(n, seed);
    const zones = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const h = hosts[i] as HostSnapshot;
      this.index.set(h.id, i);
      this.capCpu[i] = h.capacity.cpu;
      this.capMem[i] = h.capacity.memory;
      this.up[i] = h.state === 'up' ? 1 : 0;
      const z = h.tags?.[spreadTag] ?? '';
      let slot = zones.get(z);
      if (slot === undefined) {
        slot = this.zoneNames.length;
        zones.set(z, slot);
        this.zoneNames.push(z);
      }
      this.zone[i] = slot;
    }
  }

  /** Load of a host: its dominant share, max of used/capacity over CPU and memory. */
  score(h: number): number {
    const c = this.capCpu[h] as number;
    const m = this.capMem[h] as number;
    const a = c > 0 ? (this.usedCpu[h] as number) / c : 0;
    const b = m > 0 ? (this.usedMem[h] as number) / m : 0;
    return a > b ? a : b;
  }

  fits(h: number, cpu: number, mem: number): boolean {
    return (
      (this.usedCpu[h] as number) + cpu <= (this.capCpu[h] as number) &&
      (this.usedMem[h] as number) + mem <= (this.capMem[h] as number)
    );
  }

  add(h: number, cpu: number, mem: number): void {
    this.usedCpu[h] = (this.usedCpu[h] as number) + cpu;
    this.usedMem[h] = (this.usedMem[h] as number) + mem;
  }

  matches(h: number, constraints: Readonly<Record<string, string>> | undefined): boolean {
    if (constraints === undefined) return true;
    const tags = (this.hosts[h] as HostSnapshot).tags;
    for (const key in constraints) {
      if (tags?.[key] !== constraints[key]) return false;
    }
    return true;
  }

  /** Up hosts that match the constraints, in snapshot order (cached per constraint set). */
  eligible(
    signature: string,
    constraints: Readonly<Record<string, string>> | undefined,
  ): Int32Array {
    let list = this.#eligible.get(signature);
    if (list === undefined) {
      const out: number[] = [];
      for (let h = 0; h < this.n; h++) {
        if (this.up[h] === 1 && this.matches(h, constraints)) out.push(h);
      }
      list = Int32Array.from(out);
      this.#eligible.set(signature, list);
    }
    return list;
  }
}

/** A stable key for a set of constraints. */
export function constraintSignature(
  constraints: Readonly<Record<string, string>> | undefined,
): string {
  if (constraints === undefined) return '';
  const keys = Object.keys(constraints);
  if (keys.length === 0) return '';
  keys.sort();
  return keys.map((k) => `${k}=${constraints[k]}`).join('\u0000');
}
