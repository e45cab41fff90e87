import fc from 'fast-check';
import { isFlotillaError } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { ProcfileError } from './errors.js';
import { parseProcfile, stringifyProcfile } from './procfile.js';

const pairs = (text: string | Uint8Array): [string, string][] =>
  parseProcfile(text).entries.map((e) => [e.name, e.command]);

function strictError(text: string): ProcfileError {
  try {
    parseProcfile(text, { strict: true });
  } catch (err) {
    expect(err).toBeInstanceOf(ProcfileError);
    return err as ProcfileError;
  }
  throw new Error('expected parseProcfile to throw');
}

describe('parseProcfile: what defines a process', () => {
  it('reads name: command lines in file order with their line numbers', () => {
    const pf = parseProcfile('web: node server.js\n\n# comment\nworker: node worker.js\n');
    expect(pf.entries).toEqual([
      { name: 'web', command: 'node server.js', line: 1 },
      { name: 'worker', command: 'node worker.js', line: 4 },
    ]);
    expect(pf.warnings).toEqual([]);
  });

  it('accepts letters, digits, underscores and hyphens in names, in any case', () => {
    expect(pairs('custom_web: a\nwor-ker: b\n2custom: c\nProcfile: web: d\n')).toEqual([
      ['custom_web', 'a'],
      ['wor-ker', 'b'],
      ['2custom', 'c'],
      ['Procfile', 'web: d'],
    ]);
  });

  it('keeps commands exactly as written: trailing space, #, $PORT, quotes, &&', () => {
    const commands = [
      'gunicorn app.wsgi ',
      'node web.js # testing inline comment',
      'bundle exec puma -p $PORT',
      'java -Dhttp.port=${PORT} -jar app.jar',
      `sh -c "echo 'a b' && echo \\"c\\"" | tee log`,
      'env A=1 B=2  ./run   --flag',
    ];
    const text = commands.map((c, i) => `p${i}: ${c}`).join('\n');
    expect(parseProcfile(text).entries.map((e) => e.command)).toEqual(commands);
  });

  it('eats all ASCII whitespace after the colon but no other space', () => {
    expect(pairs('web:\t  \tnode x\n')).toEqual([['web', 'node x']]);
    // U+00A0 is not whitespace for foreman's Ruby regex: it stays in the command.
    expect(pairs('web:\u00a0node x\n')).toEqual([['web', '\u00a0node x']]);
  });

  it('turns CRLF into LF, so commands never end in \\r', () => {
    expect(pairs('web: a\r\nworker: b\r\n')).toEqual([
      ['web', 'a'],
      ['worker', 'b'],
    ]);
  });

  it('keeps a lone \\r and U+2028/U+2029 inside a command, as Ruby . does', () => {
    expect(pairs('web: a\rb\nx: c\u2028d\u2029e\n')).toEqual([
      ['web', 'a\rb'],
      ['x', 'c\u2028d\u2029e'],
    ]);
  });

  it('reads a last line without a final newline', () => {
    expect(pairs('web: a\nworker: b')).toEqual([
      ['web', 'a'],
      ['worker', 'b'],
    ]);
  });

  it('keeps duplicate names in order, as foreman runs both, with a warning', () => {
    const pf = parseProcfile('worker: a\nweb: b\nworker: c\n');
    expect(pf.entries.map((e) => [e.name, e.command, e.line])).toEqual([
      ['worker', 'a', 1],
      ['web', 'b', 2],
      ['worker', 'c', 3],
    ]);
    expect(pf.warnings).toEqual([expect.objectContaining({ line: 3, code: 'duplicate-name' })]);
    expect(pf.warnings[0]?.message).toContain('first on line 1');
  });

  it('strips a leading byte-order mark from text and from bytes', () => {
    expect(pairs('\ufeffweb: a\n')).toEqual([['web', 'a']]);
    expect(pairs(new TextEncoder().encode('\ufeffweb: a\n'))).toEqual([['web', 'a']]);
  });

  it('keeps a whitespace-only command, as foreman does, but warns', () => {
    const pf = parseProcfile('web: \n');
    expect(pf.entries).toEqual([{ name: 'web', command: ' ', line: 1 }]);
    expect(pf.warnings).toEqual([expect.objectContaining({ code: 'blank-command', line: 1 })]);
  });
});

describe('parseProcfile: ignored lines are warnings that say why', () => {
  const cases: [string, string, number, string][] = [
    ['web : node x', 'space-before-colon', 4, 'remove the whitespace before'],
    ['  web: node x', 'leading-whitespace', 1, 'start at column 1'],
    ['\tweb: node x', 'leading-whitespace', 1, 'start at column 1'],
    ['web:', 'missing-command', 5, 'no command'],
    ['web.1: node x', 'invalid-name', 4, '"."'],
    ['wéb: node x', 'invalid-name', 2, '"é"'],
    [': node x', 'invalid-name', 1, 'empty'],
    ['python manage.py migrate', 'missing-colon', 25, 'add the name and a colon'],
    ['// web: x', 'slash-comment', 1, "start with '#'"],
    ['<<<<<<< HEAD', 'merge-conflict-marker', 1, 'resolve the conflict'],
    ['=======', 'merge-conflict-marker', 1, 'resolve the conflict'],
    ['>>>>>>> 5bb7ec3', 'merge-conflict-marker', 1, 'resolve the conflict'],
  ];
  it.each(cases)('%j -> %s', (line, code, column, hint) => {
    const pf = parseProcfile(`# header\n${line}\nweb2: ok\n`);
    expect(pf.entries).toEqual([{ name: 'web2', command: 'ok', line: 3 }]);
    expect(pf.warnings).toHaveLength(1);
    const w = pf.warnings[0];
    expect(w).toMatchObject({ line: 2, code, column });
    expect(w?.message).toContain(hint);
    expect(w?.message).toContain(JSON.stringify(line));
  });

  it('does not warn about blank lines or # comments, indented or not', () => {
    const pf = parseProcfile('\n   \n\t\n# a\n  # b\n#web: x\nweb: y\n');
    expect(pf.warnings).toEqual([]);
    expect(pairs('#web: x\nweb: y\n')).toEqual([['web', 'y']]);
  });
});

describe('parseProcfile strict mode', () => {
  it('throws FLOTILLA_PROCFILE_SYNTAX with line, column and reason on the first ignored line', () => {
    const err = strictError('web: ok\nworker : x\n');
    expect(err.code).toBe('FLOTILLA_PROCFILE_SYNTAX');
    expect(err).toMatchObject({ line: 2, column: 7, reason: 'space-before-colon' });
    expect(err.message).toMatch(/^Procfile line 2: "worker : x" is ignored: remove the whitespace/);
    expect(isFlotillaError(err, 'FLOTILLA_PROCFILE_SYNTAX')).toBe(true);
  });

  it('throws on a whitespace-only command', () => {
    expect(strictError('web: \n')).toMatchObject({
      code: 'FLOTILLA_PROCFILE_SYNTAX',
      reason: 'blank-command',
      processName: 'web',
    });
  });

  it('throws FLOTILLA_PROCFILE_DUPLICATE on a name defined twice', () => {
    const err = strictError('web: a\nworker: b\nweb: c\n');
    expect(err).toMatchObject({ code: 'FLOTILLA_PROCFILE_DUPLICATE', line: 3, processName: 'web' });
  });

  it('throws FLOTILLA_PROCFILE_EMPTY when nothing is defined', () => {
    expect(strictError('# only a comment\n\n').code).toBe('FLOTILLA_PROCFILE_EMPTY');
    expect(strictError('').code).toBe('FLOTILLA_PROCFILE_EMPTY');
  });

  it('accepts a clean Procfile and returns no warnings', () => {
    const pf = parseProcfile('# app\nweb: a\n\nworker: b\n', { strict: true });
    expect(pf.entries).toHaveLength(2);
    expect(pf.warnings).toEqual([]);
  });
});

describe('parseProcfile input', () => {
  it('rejects input that is not text or bytes with FLOTILLA_PROCFILE_INPUT', () => {
    expect(() => parseProcfile(42 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PROCFILE_INPUT' }),
    );
  });

  it('rejects bytes that are not UTF-8 with FLOTILLA_PROCFILE_ENCODING', () => {
    expect(() => parseProcfile(new Uint8Array([0x77, 0x3a, 0x20, 0xff, 0x0a]))).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PROCFILE_ENCODING' }),
    );
  });
});

describe('stringifyProcfile', () => {
  it('writes entries and records as name: command lines', () => {
    expect(stringifyProcfile({ web: 'node server.js', worker: 'node w.js' })).toBe(
      'web: node server.js\nworker: node w.js\n',
    );
    expect(
      stringifyProcfile([
        { name: 'w', command: 'a' },
        { name: 'w', command: 'b' },
      ]),
    ).toBe('w: a\nw: b\n');
    expect(stringifyProcfile([])).toBe('');
  });

  it.each(['', 'web 1', 'web.1', 'wéb', 'a:b', ' web'])(
    'refuses name %j with FLOTILLA_PROCFILE_INVALID_NAME',
    (name) => {
      expect(() => stringifyProcfile([{ name, command: 'x' }])).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_PROCFILE_INVALID_NAME', processName: name }),
      );
    },
  );

  it.each(['', ' x', '\tx', 'a\nb', 'a\r', '\u000bx'])(
    'refuses command %j with FLOTILLA_PROCFILE_INVALID_COMMAND',
    (command) => {
      expect(() => stringifyProcfile({ web: command })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_PROCFILE_INVALID_COMMAND', processName: 'web' }),
      );
    },
  );
});

describe('round trip (property)', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
  const command = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
    .filter((c) => !/^[ \t\v\f\r]/.test(c) && !c.includes('\n') && !c.endsWith('\r'));
  const entries = fc.array(fc.record({ name, command }), { maxLength: 12 });

  it('parse(stringify(entries)) gives back the same entries', () => {
    fc.assert(
      fc.property(entries, (list) => {
        const text = stringifyProcfile(list);
        const back = parseProcfile(text).entries.map(({ name: n, command: c }) => ({
          name: n,
          command: c,
        }));
        expect(back).toEqual(list);
      }),
      { numRuns: 500 },
    );
  });

  it('stringify either refuses with a coded error or round-trips, for any strings', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ name: fc.string(), command: fc.string() })), (list) => {
        let text: string;
        try {
          text = stringifyProcfile(list);
        } catch (err) {
          expect(isFlotillaError(err)).toBe(true);
          return;
        }
        expect(
          parseProcfile(text).entries.map((e) => ({ name: e.name, command: e.command })),
        ).toEqual(list);
      }),
      { numRuns: 500 },
    );
  });
});

describe('hostile input', () => {
  const big = 'a'.repeat(10_000_000); // a 10 MB "line"
  const invalidArgument = { code: 'FLOTILLA_PROCFILE_INVALID_ARGUMENT' };

  it('refuses options that are not an options object with FLOTILLA_PROCFILE_INVALID_ARGUMENT', () => {
    for (const options of [null, 'strict', 42, [], { strict: 'no' }, { strict: 1 }]) {
      expect(() => parseProcfile('web: x\n', options as never)).toThrow(
        expect.objectContaining(invalidArgument) as Error,
      );
    }
    expect(parseProcfile('web: x\n', {}).entries).toHaveLength(1);
    expect(parseProcfile('web: x\n', { strict: false }).entries).toHaveLength(1);
  });

  it('stringify refuses what is neither entries nor a record with FLOTILLA_PROCFILE_INVALID_ARGUMENT', () => {
    for (const processes of [null, undefined, 'web: x', 42, [null], [42], ['web']]) {
      expect(() => stringifyProcfile(processes as never)).toThrow(
        expect.objectContaining(invalidArgument) as Error,
      );
    }
  });

  it('keeps NUL bytes in commands, and names a NUL in a name', () => {
    const pf = parseProcfile('web: a\u0000b\nw\u0000b: c\n');
    expect(pf.entries).toEqual([{ name: 'web', command: 'a\u0000b', line: 1 }]);
    expect(pf.warnings[0]).toMatchObject({ code: 'invalid-name', column: 2 });
    expect(pf.warnings[0]?.message).toContain('\\u0000');
    expect(parseProcfile(stringifyProcfile({ web: 'a\u0000b' })).entries[0]?.command).toBe(
      'a\u0000b',
    );
  });

  const lines: [string, string][] = [
    ['space-before-colon', `${big} : x`],
    ['missing-command', `${big}:`],
    ['blank-command', `${big}: `],
    ['duplicate-name', `${big}: x\n${big}: y`],
    ['invalid-name', `${big}.: x`],
    ['missing-colon', big],
    ['leading-whitespace', ` ${big}: x`],
    ['merge-conflict-marker', `<<<<<<< ${big}`],
  ];

  it.each(lines)('quotes at most 80 characters of a 10 MB line in a %s warning', (code, text) => {
    const pf = parseProcfile(text);
    const warning = pf.warnings.find((w) => w.code === code);
    expect(warning?.message.length).toBeLessThan(300);
    expect(warning?.message).toContain('…');
    // The strict error says the same, as briefly.
    try {
      parseProcfile(text, { strict: true });
      throw new Error('expected strict mode to throw');
    } catch (err) {
      expect(isFlotillaError(err)).toBe(true);
      expect((err as Error).message.length).toBeLessThan(300);
    }
  });

  it('quotes at most 80 characters of a 10 MB name or command in stringify errors', () => {
    for (const processes of [
      { [`${big}.`]: 'x' },
      { [big]: 'x\ny' },
      [{ name: big, command: '' }],
    ]) {
      try {
        stringifyProcfile(processes);
        throw new Error('expected stringifyProcfile to throw');
      } catch (err) {
        expect(isFlotillaError(err)).toBe(true);
        expect((err as Error).message.length).toBeLessThan(300);
      }
    }
  });

  it('never splits a surrogate pair when it shortens a line', () => {
    const pf = parseProcfile(`web : ${'😀'.repeat(100)}`);
    expect(pf.warnings[0]?.message.isWellFormed()).toBe(true);
    expect(pf.warnings[0]?.message).not.toMatch(/\\ud[89ab]/);
  });
});
