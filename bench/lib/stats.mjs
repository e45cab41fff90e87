// Helpers shared by the benchmarks (this folder is not run by `npm run bench`).

/** The p-th percentile (nearest rank) of `values`, rounded to `digits` decimals. */
export function percentile(values, p, digits = 3) {
  const sorted = [...values].sort((a, b) => a - b);
  const x = sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return Math.round(x * 10 ** digits) / 10 ** digits;
}
