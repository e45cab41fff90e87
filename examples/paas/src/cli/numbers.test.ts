// Numeric options of the client commands (logs -n, releases -n, run --timeout, ps:scale web=N):
// refused before the API is called, in the CLI's words (what is wrong, what to give); `logs -n
// abc` was answered by the server's schema in zod's words, `releases -n abc` showed 15 silently.
import { describe, expect, it } from 'vitest';
import { buildProgram } from './program.js';
import { wholeNumber } from './numbers.js';

/** What `flotilla <args>` fails with (no login, no server needed: it must fail before). */
async function refusal(...args: string[]): Promise<{ code?: string; message: string }> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(['node', 'flotilla', ...args, '-a', 'demo']);
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error(`flotilla ${args.join(' ')} did not fail`);
}

describe('numeric CLI options', () => {
  it.each([
    [
      ['logs', '-n', 'abc'],
      /^-n\/--num: "abc" is not a number of lines: give a whole number from 0 to 1500 \(-n 200\)$/,
    ],
    [['logs', '-n', '-5'], /-n\/--num: "-5" is not a number of lines/],
    [['logs', '-n', '1e3'], /-n\/--num: "1e3" is not a number of lines/],
    [['logs', '-n', '2.5'], /"2\.5" is not a number of lines/],
    [['logs', '-n', ''], /"" is not a number of lines/],
    [
      ['logs', '-n', '5000'],
      /-n\/--num: 5000 is out of range for a number of lines: give a whole number from 0 to 1500/,
    ],
    [['logs', '-n', '9'.repeat(400)], /"9{40}\.\.\." is not a number of lines/],
    [['logs', '-n', '10\0'], /is not a number of lines/],
    [
      ['releases', '-n', 'abc'],
      /-n\/--num: "abc" is not a number of releases: give a whole number from 1 to 1000000 \(-n 30\)/,
    ],
    [['releases', '-n', '0'], /0 is out of range for a number of releases/],
    [
      ['run', '--timeout', 'soon', 'ls'],
      /--timeout: "soon" is not a number of seconds: give a whole number from 1 to 86400 \(--timeout 600\)/,
    ],
    [['run', '--timeout', '0', 'ls'], /--timeout: 0 is out of range/],
    [
      ['ps:scale', 'web=99999'],
      /web=99999: 99999 is out of range for a count of web dynos: give a whole number from 0 to 10000 \(web=3\)/,
    ],
  ])('flotilla %j is refused saying what to give', async (args, message) => {
    const err = await refusal(...args);
    expect(err.code).toBe('FLOTILLA_PAAS_INVALID_REQUEST');
    expect(err.message).toMatch(message);
  });

  it('reads good values', () => {
    const rule = { option: '-n', what: 'a number of lines', min: 0, max: 1500, example: '-n 1' };
    expect(wholeNumber('0', rule)).toBe(0);
    expect(wholeNumber('1500', rule)).toBe(1500);
    expect(wholeNumber('007', rule)).toBe(7);
  });
});
