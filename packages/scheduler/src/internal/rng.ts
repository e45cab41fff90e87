/** A small seeded PRNG (mulberry32): the same seed gives the same plan. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded random permutation of 0..n-1, used as tie-break ranks. */
export function shuffledRanks(n: number, seed: number): Int32Array {
  const ranks = new Int32Array(n);
  for (let i = 0; i < n; i++) ranks[i] = i;
  const next = rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = ranks[i] as number;
    ranks[i] = ranks[j] as number;
    ranks[j] = t;
  }
  return ranks;
}
