// The `ps` names of one-off runs: short, stable for a run's life, distinct among an app's runs.
import type { RunInfo } from '@flotilla/controller';
import { describe, expect, it } from 'vitest';
import { OneOffNames } from './dynos.js';

const info = (id: string, type: 'run' | 'release' = 'run', startedAt = 1): RunInfo => ({
  id,
  type,
  command: 'bash',
  release: 'v1',
  deployment: 'v1',
  size: 'standard',
  startedAt,
});

describe('OneOffNames', () => {
  it('names a run run.<4 digits> from its job id, the same at every look', () => {
    const names = new OneOffNames();
    const [d] = names.dynos('demo', [info('demo.run.00000000000a')]);
    expect(d).toMatchObject({ name: 'run.1010', type: 'run', index: 1010, state: 'up' });
    expect(names.dynos('demo', [info('demo.run.00000000000a')])[0]?.name).toBe('run.1010');
    expect(names.dynos('demo', [info('demo.release.00000000000b', 'release')])[0]?.name).toBe(
      'release.1011',
    );
  });

  it('gives two runs whose ids give the same digits distinct names, kept while both run', () => {
    const names = new OneOffNames();
    // 0x0a and 0x0a + 9000 (0x2332) both give 1010.
    const a = info('demo.run.00000000000a', 'run', 1);
    const b = info('demo.run.000000002332', 'run', 2);
    expect(names.dynos('demo', [a, b]).map((d) => d.name)).toEqual(['run.1010', 'run.1011']);
    // Seen in the other order later, each keeps its name.
    expect(names.dynos('demo', [b, a]).map((d) => d.name)).toEqual(['run.1011', 'run.1010']);
    // a ended: b keeps run.1011; a new run with a's digits may take run.1010 again.
    const c = info('demo.run.00000000465a', 'run', 3);
    expect(names.dynos('demo', [b, c]).map((d) => d.name)).toEqual(['run.1011', 'run.1010']);
    // Another app's runs are named apart.
    expect(names.dynos('other', [info('other.run.00000000000a')])[0]?.name).toBe('run.1010');
  });

  it('wraps past 9999, and a run and a release phase with the same digits keep them', () => {
    const names = new OneOffNames();
    const top = 8999; // gives 9999
    const hex = (n: number): string => n.toString(16).padStart(12, '0');
    const out = names.dynos('demo', [
      info(`demo.run.${hex(top)}`, 'run', 1),
      info(`demo.run.${hex(top + 9000)}`, 'run', 2),
      info(`demo.release.${hex(top)}`, 'release', 3),
    ]);
    expect(out.map((d) => d.name)).toEqual(['run.9999', 'run.1000', 'release.9999']);
  });
});
