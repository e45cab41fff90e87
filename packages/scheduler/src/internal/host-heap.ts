/**
 * A binary min-heap of host entries keyed by (score, rank), in typed arrays, for a scheduler
 * whose hosts change load all the time. Entries are never updated in place. When a host's
 * load drops, {@link HostHeap.set} pushes a new entry with a new stamp, and entries whose stamp
 * is not the host's current one are dropped when they surface. When load grows, nothing needs
 * doing: {@link HostHeap.popValid} finds the entry's score too low and re-files it. The heap
 * compacts itself when dead entries pile up.
 */
export class HostHeap {
  #score: Float64Array;
  #rank: Int32Array;
  #host: Int32Array;
  #stamp: Int32Array;
  #size = 0;
  /** Current stamp per host index; -1 when the host is not in this heap. */
  #current: Int32Array;
  #live = 0;

  constructor(capacity: number, hostCapacity: number) {
    const n = Math.max(4, capacity);
    this.#score = new Float64Array(n);
    this.#rank = new Int32Array(n);
    this.#host = new Int32Array(n);
    this.#stamp = new Int32Array(n);
    this.#current = new Int32Array(Math.max(4, hostCapacity)).fill(-1);
  }

  /** Live hosts in the heap. */
  get live(): number {
    return this.#live;
  }

  /** Whether the host is in the heap. */
  has(host: number): boolean {
    return host < this.#current.length && (this.#current[host] as number) >= 0;
  }

  /** Adds the host or moves it to a new score. */
  set(host: number, score: number, rank: number): void {
    if (host >= this.#current.length) this.#growHosts(host + 1);
    const prev = this.#current[host] as number;
    if (prev < 0) this.#live++;
    const stamp = prev < 0 ? 0 : prev + 1;
    this.#current[host] = stamp;
    this.#push(host, score, rank, stamp);
    if (this.#size > 4 * this.#live + 64) this.#compact();
  }

  /** Removes the host (its entries die). */
  delete(host: number): void {
    if (!this.has(host)) return;
    this.#current[host] = -1;
    this.#live--;
  }

  /**
   * Removes and returns the live host with the lowest (score, rank), or -1. The host leaves
   * the heap; {@link set} puts it back.
   */
  popValid(scoreOf: (host: number) => number): number {
    while (this.#size > 0) {
      const host = this.#host[0] as number;
      const stamp = this.#stamp[0] as number;
      const score = this.#score[0] as number;
      const rank = this.#rank[0] as number;
      this.#popTop();
      if ((this.#current[host] as number) !== stamp) continue;
      // Load only grows without a new entry (placements elsewhere): re-file it at its score.
      const now = scoreOf(host);
      if (now > score) {
        this.#push(host, now, rank, stamp);
        continue;
      }
      this.#current[host] = -1;
      this.#live--;
      return host;
    }
    return -1;
  }

  #push(host: number, score: number, rank: number, stamp: number): void {
    if (this.#size === this.#host.length) this.#grow();
    let i = this.#size++;
    const s = this.#score;
    const r = this.#rank;
    const h = this.#host;
    const t = this.#stamp;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = s[p] as number;
      if (ps < score || (ps === score && (r[p] as number) <= rank)) break;
      s[i] = ps;
      r[i] = r[p] as number;
      h[i] = h[p] as number;
      t[i] = t[p] as number;
      i = p;
    }
    s[i] = score;
    r[i] = rank;
    h[i] = host;
    t[i] = stamp;
  }

  #popTop(): void {
    const s = this.#score;
    const r = this.#rank;
    const h = this.#host;
    const t = this.#stamp;
    const n = --this.#size;
    if (n === 0) return;
    const score = s[n] as number;
    const rank = r[n] as number;
    const host = h[n] as number;
    const stamp = t[n] as number;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const c2 = c + 1;
      if (c2 < n) {
        const a = s[c] as number;
        const b = s[c2] as number;
        if (b < a || (b === a && (r[c2] as number) < (r[c] as number))) c = c2;
      }
      const cs = s[c] as number;
      if (cs > score || (cs === score && (r[c] as number) >= rank)) break;
      s[i] = cs;
      r[i] = r[c] as number;
      h[i] = h[c] as number;
      t[i] = t[c] as number;
      i = c;
    }
    s[i] = score;
    r[i] = rank;
    h[i] = host;
    t[i] = stamp;
  }

  /** Drops dead entries and rebuilds the heap. */
  #compact(): void {
    const entries: [number, number, number, number][] = [];
    for (let i = 0; i < this.#size; i++) {
      const host = this.#host[i] as number;
      if ((this.#current[host] as number) === (this.#stamp[i] as number)) {
        entries.push([
          this.#score[i] as number,
          this.#rank[i] as number,
          host,
          this.#stamp[i] as number,
        ]);
      }
    }
    this.#size = 0;
    for (const [score, rank, host, stamp] of entries) this.#push(host, score, rank, stamp);
  }

  #grow(): void {
    const n = this.#host.length * 2;
    const grow = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.#score = grow(this.#score, (k) => new Float64Array(k));
    this.#rank = grow(this.#rank, (k) => new Int32Array(k));
    this.#host = grow(this.#host, (k) => new Int32Array(k));
    this.#stamp = grow(this.#stamp, (k) => new Int32Array(k));
  }

  #growHosts(min: number): void {
    let n = this.#current.length * 2;
    while (n < min) n *= 2;
    const c = new Int32Array(n).fill(-1);
    c.set(this.#current);
    this.#current = c;
  }
}
