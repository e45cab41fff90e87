// The one-off sections of `flotilla ps`, after the formation's table.
import { describe, expect, it } from 'vitest';
import { oneOffSections } from './ps.js';

const NOW = Date.UTC(2026, 11, 2, 10, 0, 5);
const dyno = (name: string, type: string, command?: string) => ({
  id: `demo.${name}`,
  name,
  type,
  state: 'up',
  release: 'v4',
  host: '',
  startedAt: Date.UTC(2026, 11, 2, 10, 0, 0),
  createdAt: 0,
  ...(command === undefined ? {} : { command, size: 'standard' }),
});

describe('oneOffSections', () => {
  it("prints Heroku's section for runs and one for a release phase; formation dynos are not in them", () => {
    expect(
      oneOffSections(
        [
          dyno('web.1', 'web'),
          dyno('run.4821', 'run', 'bash'),
          dyno('run.1234', 'run', 'rake db:migrate'),
          dyno('release.2000', 'release', 'bin/migrate'),
        ],
        NOW,
      ),
    ).toBe(
      '=== run: one-off processes (2)\n' +
        'run.4821 (standard): up 2026/12/02 10:00:00 +0000 (~ 5s ago): bash\n' +
        'run.1234 (standard): up 2026/12/02 10:00:00 +0000 (~ 5s ago): rake db:migrate\n' +
        '=== release: release phase (1)\n' +
        'release.2000 (standard): up 2026/12/02 10:00:00 +0000 (~ 5s ago): bin/migrate\n',
    );
    expect(oneOffSections([dyno('web.1', 'web')], NOW)).toBe('');
  });

  it('prints a command on one line: newlines and terminal escapes are shown, not acted on', () => {
    const out = oneOffSections([dyno('run.4821', 'run', 'echo a\necho b\t\x1b]0;owned\x07')], NOW);
    expect(out).toContain(': echo a\\necho b\\t\\x1b]0;owned\\x07\n');
    expect(out.split('\n')).toHaveLength(3);
  });
});
