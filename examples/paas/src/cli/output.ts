/** Prints rows as an aligned table under a header. */
export function table(rows: readonly (readonly string[])[], header: readonly string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return (
    [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n'
  );
}

/** Prints JSON for `--json`. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** How long ago a time was, for humans. */
export function ago(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86_400) return `${Math.round(s / 3600)}h ago`;
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

/** `Doing something... ` then `done` or the error: what a long wait is waiting for. */
export async function step<T>(
  what: string,
  fn: () => Promise<T>,
  done: (r: T) => string = () => 'done',
): Promise<T> {
  process.stderr.write(`${what}... `);
  try {
    const r = await fn();
    process.stderr.write(`${done(r)}\n`);
    return r;
  } catch (err) {
    process.stderr.write('failed\n');
    throw err;
  }
}
