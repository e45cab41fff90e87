// Review of ps's one-off sections: a command is printed as text, never acted on by a terminal.
import { describe, expect, it } from 'vitest';
import { oneOffSections } from './ps.js';

const NOW = Date.UTC(2026, 11, 2, 10, 0, 5);

describe('oneOffSections', () => {
  it("shows a command's 8-bit controls (CSI as U+009B), line separators and bidi overrides", () => {
    // U+009B is CSI for a terminal that takes C1 controls: "\u009b2J" clears its screen; U+2028
    // ends a line for some; U+202E turns the rest of the line around (`ps` lied about it).
    const command = 'echo \u009b2J \u0085x \u2028y \u202etxt.exe';
    const out = oneOffSections(
      [
        {
          id: 'demo.run.1',
          name: 'run.4821',
          type: 'run',
          state: 'up',
          release: 'v4',
          host: '',
          startedAt: Date.UTC(2026, 11, 2, 10, 0, 0),
          createdAt: 0,
          command,
          size: 'standard',
        },
      ],
      NOW,
    );
    expect(out).toContain(': echo \\x9b2J \\x85x \\u2028y \\u202etxt.exe\n');
    expect(out).not.toMatch(/[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
  });
});
