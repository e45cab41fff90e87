import type { HostSnapshot } from '../types.js';
import { rng } from './rng.js';

/**
 * The hosts of a cluster in growable typed arrays, with the resources held on each. Host
 * slots are never reused: a removed host leaves an empty slot.
 */
export class Cluster {
  /** Slots in use (including removed hosts' empty slots). */
  n = 0;
  readonly hosts: (HostSnapshot | undefined)[] = [];
  readonly index = new Map<string, number>();
  capCpu: Float64Array = new Float64Array(16);
  capMem: Float64Array = new Float64Array(16);
  usedCpu: Float64Array = new Float64Array(16);
  usedMem: Float64Array = new Float64Array(16);
  /** 1 when the host exists and is up. */
  up: Uint8Array = new Uint8Array(16);
  /** Zone slot of each host (its value of the spread tag), see {@link zoneNames}. */
  zone: Int32Array = new Int32Array(16);
  /** Seeded tie-break rank of each host. */
  rank: Int32Array = new Int32Array(16);
  readonly zoneNames: string[] = [];
  readonly #zoneSlots = new Map<string, number>();
  readonly #spreadTag: string;
  readonly #random: () => number;
  readonly #eligible = new Map<string, Int32Array>();

  constructor(spreadTag: string, seed: number) {
    this.#spreadTag = spreadTag;
    this.#random = rng(seed);
  }

  /**
   * Adds or replaces a host. Resources held stay as they are. Returns whether the host is new
   * or changed in a way placement sees (state, capacity, tags): a re-put of the same record
   * changes nothing, and keeps the cached eligibility lists. `forced`: whether its drain's
   * deadline passed (or was lifted) with this put, which placement does not see but its jobs do.
   */
  setHost(host: HostSnapshot): { slot: number; isNew: boolean; changed: boolean; forced: boolean } {
    let h = this.index.get(host.id);
    const before = h === undefined ? undefined : this.hosts[h];
    if (h === undefined) {
      h = this.n++;
      if (h >= this.capCpu.length) this.#grow();
      this.index.set(host.id, h);
      this.rank[h] = Math.floor(this.#random() * 0x7fffffff);
    }
    this.hosts[h] = host;
    const forced = (before?.drainForced === true) !== (host.drainForced === true);
    const eligibility =
      before === undefined || before.state !== host.state || !sameTags(before.tags, host.tags);
    const changed =
      eligibility ||
      before.capacity.cpu !== host.capacity.cpu ||
      before.capacity.memory !== host.capacity.memory;
    if (!changed) return { slot: h, isNew: false, changed: false, forced };
    this.capCpu[h] = host.capacity.cpu;
    this.capMem[h] = host.capacity.memory;
    this.up[h] = host.state === 'up' ? 1 : 0;
    const z = host.tags?.[this.#spreadTag] ?? '';
    let slot = this.#zoneSlots.get(z);
    if (slot === undefined) {
      slot = this.zoneNames.length;
      this.#zoneSlots.set(z, slot);
      this.zoneNames.push(z);
    }
    this.zone[h] = slot;
    if (eligibility) this.#eligible.clear();
    return { slot: h, isNew: before === undefined, changed: true, forced };
  }

  /** Removes a host: its slot stays, empty and not up. Returns the slot, if it existed. */
  removeHost(id: string): number | undefined {
    const h = this.index.get(id);
    if (h === undefined) return undefined;
    this.index.delete(id);
    this.hosts[h] = undefined;
    this.up[h] = 0;
    this.capCpu[h] = 0;
    this.capMem[h] = 0;
    this.#eligible.clear();
    return h;
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
    const tags = this.hosts[h]?.tags;
    for (const key in constraints) {
      if (tags?.[key] !== constraints[key]) return false;
    }
    return true;
  }

  /** Up hosts that match the constraints, by slot (cached per constraint set until hosts change). */
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

  #grow(): void {
    const n = this.capCpu.length * 2;
    const f = (a: Float64Array): Float64Array => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const i = (a: Int32Array): Int32Array => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.capCpu = f(this.capCpu);
    this.capMem = f(this.capMem);
    this.usedCpu = f(this.usedCpu);
    this.usedMem = f(this.usedMem);
    const up = new Uint8Array(n);
    up.set(this.up);
    this.up = up;
    this.zone = i(this.zone);
    this.rank = i(this.rank);
  }
}

/**
 * A stable key for a set of constraints, `''` for none. Two sets get the same key only if
 * they are equal, whatever characters their tags hold (`{ 'a=b': 'c' }` is not `{ a: 'b=c' }`).
 */
export function constraintSignature(
  constraints: Readonly<Record<string, string>> | undefined,
): string {
  if (constraints === undefined) return '';
  const keys = Object.keys(constraints);
  if (keys.length === 0) return '';
  keys.sort();
  return JSON.stringify(keys.map((k) => [k, constraints[k]]));
}

function sameTags(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}
