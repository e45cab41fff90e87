import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { configVarsScript } from './shell.js';

/** Sources the script in bash with `env`, and reads back each variable. */
function sourced(script: string, keys: string[], env: Record<string, string>): string[] {
  const res = spawnSync(
    'bash',
    ['-c', `${script}\nfor k in ${keys.join(' ')}; do printf '%s\\0' "\${!k}"; done`],
    { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  expect(res.stderr).toBe('');
  return res.stdout.split('\0').slice(0, -1);
}

describe('configVarsScript', () => {
  it('gives every value back exactly, whatever characters it holds', () => {
    const values = fc.sample(
      fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0')),
      300,
    );
    values.push(`'`, `'\\''`, '}', '${HOME}', '$(id)', '`id`', '\n', '!!', '*', '~', ' lead', '\\');
    const vars = Object.fromEntries(values.map((v, i) => [`V${i}`, v]));
    expect(sourced(configVarsScript(vars), Object.keys(vars), {})).toEqual(values);
  });

  it('leaves a variable the app sets alone, and fills one set empty', () => {
    const script = configVarsScript({ A: 'default a', B: 'default b', C: 'default c' });
    expect(sourced(script, ['A', 'B', 'C'], { A: 'mine  with * and $HOME', B: '' })).toEqual([
      'mine  with * and $HOME',
      'default b',
      'default c',
    ]);
  });
});
