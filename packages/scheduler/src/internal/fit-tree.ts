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
    return this.#descend(1, cpu, mem);
  }

  #descend(node: number, cpu: number, mem: number): number {
    if ((this.#cpu[node] as number) < cpu || (this.#mem[node] as number) < mem) return -1;
    if (node >= this.#size) return this.#hosts[node - this.#size] as number;
    const left = this.#descend(2 * node, cpu, mem);
    return left >= 0 ? left : this.#descend(2 * node + 1, cpu, mem);
  }
}
