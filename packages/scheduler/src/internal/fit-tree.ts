/**
 * A segment tree over hosts in a fixed order, keeping the most free CPU and memory under each
 * node, to find the first host (in that order) where a job fits in O(log n) typical time:
 * first-fit for bin packing.
 */
export class FitTree {
  readonly #size: number;
  readonly #cpu: Float64Array;
  readonly #mem: Float64Array;
  /** Host index of each leaf. */
  readonly #hosts: Int32Array;
  /** Leaf of each host index, -1 when not in this tree. */
  readonly #leafOf: Int32Array;

  /**
   * @param order - host indices in preference order.
   * @param hostCount - number of hosts in the cluster (for the reverse index).
   */
  constructor(
    order: readonly number[] | Int32Array,
    hostCount: number,
    freeCpu: Float64Array,
    freeMem: Float64Array,
  ) {
    let size = 1;
    while (size < order.length) size *= 2;
    this.#size = size;
    this.#cpu = new Float64Array(2 * size).fill(-1);
    this.#mem = new Float64Array(2 * size).fill(-1);
    this.#hosts = new Int32Array(size).fill(-1);
    this.#leafOf = new Int32Array(hostCount).fill(-1);
    for (let i = 0; i < order.length; i++) {
      const h = order[i] as number;
      this.#hosts[i] = h;
      this.#leafOf[h] = i;
      this.#cpu[size + i] = freeCpu[h] as number;
      this.#mem[size + i] = freeMem[h] as number;
    }
    for (let i = size - 1; i >= 1; i--) {
      this.#cpu[i] = Math.max(this.#cpu[2 * i] as number, this.#cpu[2 * i + 1] as number);
      this.#mem[i] = Math.max(this.#mem[2 * i] as number, this.#mem[2 * i + 1] as number);
    }
  }

  /** Whether the host is in this tree. */
  has(host: number): boolean {
    return (this.#leafOf[host] ?? -1) >= 0;
  }

  /** Sets a host's free resources. */
  update(host: number, freeCpu: number, freeMem: number): void {
    const leaf = this.#leafOf[host] ?? -1;
    if (leaf < 0) return;
    let i = this.#size + leaf;
    this.#cpu[i] = freeCpu;
    this.#mem[i] = freeMem;
    for (i >>= 1; i >= 1; i >>= 1) {
      const c = Math.max(this.#cpu[2 * i] as number, this.#cpu[2 * i + 1] as number);
      const m = Math.max(this.#mem[2 * i] as number, this.#mem[2 * i + 1] as number);
      if (c === this.#cpu[i] && m === this.#mem[i]) break;
      this.#cpu[i] = c;
      this.#mem[i] = m;
    }
  }

  /** The first host in order with at least `cpu` and `mem` free, or -1. */
  first(cpu: number, mem: number): number {
    const at = this.firstFrom(0, cpu, mem);
    return at < 0 ? -1 : (this.#hosts[at] as number);
  }

  /** Position in the order of the first host at or after `start` with room, or -1. */
  firstFrom(start: number, cpu: number, mem: number): number {
    if (start <= 0) return this.#descend(1, cpu, mem);
    if (start >= this.#size) return -1;
    // Up from the start leaf: at each left child, try its right sibling's subtree.
    let node = this.#size + start;
    if ((this.#cpu[node] as number) >= cpu && (this.#mem[node] as number) >= mem) return start;
    while (node > 1) {
      if ((node & 1) === 0) {
        const found = this.#descend(node + 1, cpu, mem);
        if (found >= 0) return found;
      }
      node >>= 1;
    }
    return -1;
  }

  /** The host at a position in the order. */
  hostAt(position: number): number {
    return this.#hosts[position] as number;
  }

  /** Position of the leftmost leaf under `node` with room, or -1. */
  #descend(node: number, cpu: number, mem: number): number {
    if ((this.#cpu[node] as number) < cpu || (this.#mem[node] as number) < mem) return -1;
    if (node >= this.#size) return node - this.#size;
    const left = this.#descend(2 * node, cpu, mem);
    return left >= 0 ? left : this.#descend(2 * node + 1, cpu, mem);
  }
}
