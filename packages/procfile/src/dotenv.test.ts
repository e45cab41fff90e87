import dotenv from 'dotenv';
import fc from 'fast-check';
import { isFlotillaError } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { parseDotenv, stringifyDotenv } from './dotenv.js';

const values = (text: string): Record<string, string> => ({ ...parseDotenv(text).values });

describe('parseDotenv', () => {
  it('reads KEY=value, export, comments and blank lines', () => {
    const env = parseDotenv(
      '# comment\nexport PORT=5000\n\nNAME = demo  # trailing comment\nEMPTY=\n',
    );
    expect({ ...env.values }).toEqual({ PORT: '5000', NAME: 'demo', EMPTY: '' });
    expect(env.entries.map((e) => [e.key, e.line])).toEqual([
      ['PORT', 2],
      ['NAME', 4],
      ['EMPTY', 5],
    ]);
    expect(env.warnings).toEqual([]);
  });

  it('unquotes single, double and backtick quotes; # inside quotes is kept', () => {
    expect(values(`A='x # y'\nB="x # y"\nC=\`it's "q"\`\n`)).toEqual({
      A: 'x # y',
      B: 'x # y',
      C: `it's "q"`,
    });
  });

  it('expands \\n and \\r only inside double quotes', () => {
    expect(values(`A="a\\nb\\rc"\nB='a\\nb'\nC=a\\nb\n`)).toEqual({
      A: 'a\nb\rc',
      B: 'a\\nb',
      C: 'a\\nb',
    });
  });

  it('lets quoted values span lines and numbers lines after them correctly', () => {
    const env = parseDotenv('KEY="-----BEGIN\nline2\n-----END"\nNEXT=1\n  bogus line\n');
    expect(env.values.KEY).toBe('-----BEGIN\nline2\n-----END');
    expect(env.entries.map((e) => [e.key, e.line])).toEqual([
      ['KEY', 1],
      ['NEXT', 4],
    ]);
    expect(env.warnings.map((w) => w.line)).toEqual([5]);
  });

  it('lets later keys win while entries keep every assignment', () => {
    const env = parseDotenv('A=1\nA=2\n');
    expect(env.values.A).toBe('2');
    expect(env.entries.map((e) => e.value)).toEqual(['1', '2']);
  });

  it('treats CRLF like LF and accepts the KEY: value form', () => {
    expect(values('A=1\r\nB: 2\r\n')).toEqual({ A: '1', B: '2' });
  });

  it('reports lines that assign nothing with their line numbers', () => {
    const env = parseDotenv('A=1\nnot an assignment\nB=2\nexport\n');
    expect(env.warnings).toEqual([
      expect.objectContaining({ line: 2, code: 'invalid-line' }),
      expect.objectContaining({ line: 4, code: 'invalid-line' }),
    ]);
    expect(env.warnings[0]?.message).toContain('"not an assignment"');
  });

  it('throws FLOTILLA_PROCFILE_DOTENV_SYNTAX on the first invalid line in strict mode', () => {
    expect(() => parseDotenv('A=1\n\noops\n', { strict: true })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PROCFILE_DOTENV_SYNTAX', line: 3 }),
    );
  });

  it('is safe with keys like __proto__', () => {
    const env = parseDotenv('__proto__=x\nconstructor=y\n');
    expect(env.values['__proto__']).toBe('x');
    expect(Object.keys(env.values)).toEqual(['__proto__', 'constructor']);
  });
});

describe('parseDotenv agrees with Node dotenv (property)', () => {
  const piece = fc.constantFrom(
    'A',
    'B_2',
    'export ',
    '=',
    ': ',
    ' ',
    '\t',
    '\n',
    '\r\n',
    '#',
    "'",
    '"',
    '`',
    '\\n',
    'x y',
    'é',
    '.',
    '-',
    '\u2028',
    '\u00a0',
    '\v',
    '\r',
    '\n\n  \n',
  );
  it('on random .env-like text', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (parts) => {
        const text = parts.join('');
        expect({ ...parseDotenv(text).values }).toEqual(dotenv.parse(text));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('stringifyDotenv', () => {
  it('quotes only as needed', () => {
    expect(
      stringifyDotenv({
        PORT: '5000',
        MSG: 'hi # there',
        EMPTY: '',
        PAD: ' x ',
        Q: "'q'",
        R: "it's",
      }),
    ).toBe("PORT=5000\nMSG='hi # there'\nEMPTY=\nPAD=' x '\nQ=`'q'`\nR=it's\n");
  });

  it('refuses bad keys with FLOTILLA_PROCFILE_DOTENV_INVALID_KEY', () => {
    expect(() => stringifyDotenv({ 'A B': '1' })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PROCFILE_DOTENV_INVALID_KEY', key: 'A B' }),
    );
  });

  it('refuses a value no quoting can carry with FLOTILLA_PROCFILE_DOTENV_INVALID_VALUE', () => {
    expect(() => stringifyDotenv({ V: `'"\`\n` })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PROCFILE_DOTENV_INVALID_VALUE', key: 'V' }),
    );
  });

  const key = fc.stringMatching(/^[\w.-]{1,12}$/);
  it('round-trips any value it accepts, for us and for Node dotenv (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ unit: 'binary', maxLength: 30 })), (vars) => {
        let text: string;
        try {
          text = stringifyDotenv(vars);
        } catch (err) {
          expect(isFlotillaError(err, 'FLOTILLA_PROCFILE_DOTENV_INVALID_VALUE')).toBe(true);
          return;
        }
        expect({ ...parseDotenv(text).values }).toEqual(vars);
        // Node dotenv assigns into a plain object, where a __proto__ key is lost.
        if (!('__proto__' in vars && Object.hasOwn(vars, '__proto__'))) {
          expect(dotenv.parse(text)).toEqual(vars);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('hostile input', () => {
  const big = 'a'.repeat(10_000_000);
  const invalidArgument = { code: 'FLOTILLA_PROCFILE_INVALID_ARGUMENT' };

  it('refuses options that are not an options object with FLOTILLA_PROCFILE_INVALID_ARGUMENT', () => {
    for (const options of [null, 'strict', 42, { strict: 'yes' }]) {
      expect(() => parseDotenv('A=1\n', options as never)).toThrow(
        expect.objectContaining(invalidArgument) as Error,
      );
    }
  });

  it('stringify refuses what is neither entries nor a record with FLOTILLA_PROCFILE_INVALID_ARGUMENT', () => {
    for (const vars of [null, undefined, 'A=1', 42, [null], ['A']]) {
      expect(() => stringifyDotenv(vars as never)).toThrow(
        expect.objectContaining(invalidArgument) as Error,
      );
    }
  });

  it('keeps NUL bytes in values, both ways', () => {
    expect(parseDotenv('A=a\u0000b\n').values.A).toBe('a\u0000b');
    expect(parseDotenv(stringifyDotenv({ A: 'a\u0000b' })).values.A).toBe('a\u0000b');
  });

  it('quotes at most 80 characters of a 10 MB line or key in warnings and errors', () => {
    expect(parseDotenv(`!${big}`).warnings[0]?.message.length).toBeLessThan(300);
    for (const fn of [
      () => parseDotenv(`!${big}`, { strict: true }),
      () => stringifyDotenv({ [`${big}!`]: 'x' }),
      () => stringifyDotenv({ [big]: 42 as unknown as string }),
    ]) {
      try {
        fn();
        throw new Error('expected a ProcfileError');
      } catch (err) {
        expect(isFlotillaError(err)).toBe(true);
        expect((err as Error).message.length).toBeLessThan(300);
      }
    }
  });

  // Quadratic before: at each blank line, the leading \s* of the assignment pattern ran over
  // every blank line after it to the line that is no assignment, so this took minutes
  // (100,000 lines: 11 s). Linear, it takes milliseconds.
  it('reads 500,000 blank lines before a bad line without slowing down quadratically', () => {
    const env = parseDotenv(`${'\n'.repeat(250_000)}${' \t\n'.repeat(250_000)}!\nA=1\n`);
    expect(env.values).toEqual({ A: '1' });
    expect(env.entries).toEqual([{ key: 'A', value: '1', line: 500_002 }]);
    expect(env.warnings).toEqual([expect.objectContaining({ line: 500_001 })]);
  });
});
