// Review of the one-offs' ps names: an app with more one-offs at once than 4-digit names.
import type { RunInfo } from '@flotilla/controller';
import { describe, expect, it } from 'vitest';
import { OneOffNames } from './dynos.js';

const info = (i: number): RunInfo => ({
  id: `demo.run.${i.toString(16).padStart(12, '0')}`,
  type: 'run',
  command: 'sleep 600',
  release: 'v1',
  deployment: 'v1',
  size: 'standard',
  startedAt: i,
});

describe('OneOffNames', () => {
  it('names 9,001 runs at once distinctly, and keeps the names at the next look', () => {
    // Before: the search for a free number looped for ever past 9,000 (the server hung), and
    // the look-up per run was quadratic (seconds for 1,000).
    const names = new OneOffNames();
    const runs = Array.from({ length: 9001 }, (_, i) => info(i));
    const first = names.dynos('demo', runs).map((d) => d.name);
    expect(new Set(first).size).toBe(9001);
    expect(first.every((n) => /^run\.[0-9]{4,5}$/.test(n))).toBe(true);
    expect(names.dynos('demo', [...runs].reverse()).map((d) => d.name)).toEqual(
      [...first].reverse(),
    );
  });
});
