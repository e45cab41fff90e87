/**
 * A binary min-heap of host indices keyed by (score, rank), in typed arrays. Each host is in a
 * heap at most once. Keys may go stale when a host's load changes through another heap; the
 * caller re-checks the key on pop and pushes the host back with its current score (scores only
 * grow during a scheduling pass, so stale entries surface early and are corrected).
 */
export class HostHeap {
  #score: Float64Array;
  #rank: Int32Array;
  #host: Int32Array;
  #size = 0;

  constructor(capacity: number) {
    this.#score = new Float64Array(Math.max(1, capacity));
    this.#rank = new Int32Array(Math.max(1, capacity));
    this.#host = new Int32Array(Math.max(1, capacity));
  }

  get size(): number {
    return this.#size;
  }

  push(host: number, score: number, rank: number): void {
    if (this.#size === this.#host.length) this.#grow();
    let i = this.#size++;
    const s = this.#score;
    const r = this.#rank;
    const h = this.#host;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = s[p] as number;
      if (ps < score || (ps === score && (r[p] as number) <= rank)) break;
      s[i] = ps;
      r[i] = r[p] as number;
      h[i] = h[p] as number;
      i = p;
    }
    s[i] = score;
    r[i] = rank;
    h[i] = host;
  }

  /** Score of the top entry (Infinity when empty). */
  peekScore(): number {
    return this.#size === 0 ? Infinity : (this.#score[0] as number);
  }

  /** Host of the top entry (-1 when empty). */
  peekHost(): number {
    return this.#size === 0 ? -1 : (this.#host[0] as number);
  }

  /** Removes the top entry and returns its host (-1 when empty). */
  pop(): number {
    if (this.#size === 0) return -1;
    const s = this.#score;
    const r = this.#rank;
    const h = this.#host;
    const top = h[0] as number;
    const n = --this.#size;
    if (n === 0) return top;
    const score = s[n] as number;
    const rank = r[n] as number;
    const host = h[n] as number;
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
      i = c;
    }
    s[i] = score;
    r[i] = rank;
    h[i] = host;
    return top;
  }

  #grow(): void {
    const n = this.#host.length * 2;
    const s = new Float64Array(n);
    s.set(this.#score);
    const r = new Int32Array(n);
    r.set(this.#rank);
    const h = new Int32Array(n);
    h.set(this.#host);
    this.#score = s;
    this.#rank = r;
    this.#host = h;
  }
}
