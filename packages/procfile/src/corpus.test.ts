import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseProcfile } from './procfile.js';

// The corpus of 58 real Procfiles lives outside the project (../shared/corpus/procfiles, next to
// the checkout). It is data for checking only and is never copied in.
const here = dirname(fileURLToPath(import.meta.url));
const corpus =
  process.env.FLOTILLA_PROCFILE_CORPUS ?? resolve(here, '../../../../shared/corpus/procfiles');
const present = existsSync(join(corpus, 'expected.json'));

interface Expected {
  file: string;
  foreman: [string, string][];
  foreman_ignored_lines: string[];
}

if (!present) {
  console.warn(
    `procfile corpus not found at ${corpus}: conformance test not run (set FLOTILLA_PROCFILE_CORPUS)`,
  );
}

describe.runIf(present)(`foreman conformance over ${corpus}`, () => {
  const expected = present
    ? (JSON.parse(readFileSync(join(corpus, 'expected.json'), 'utf8')) as Expected[])
    : [];

  it('holds 58 files', () => {
    expect(expected).toHaveLength(58);
  });

  it.each(expected.map((e) => [e.file, e] as const))('%s', (_file, e) => {
    const pf = parseProcfile(readFileSync(join(corpus, e.file)));
    expect(pf.entries.map((x) => [x.name, x.command])).toEqual(e.foreman);
    const ignored = pf.warnings.filter(
      (w) => w.code !== 'duplicate-name' && w.code !== 'blank-command',
    );
    expect(ignored).toHaveLength(e.foreman_ignored_lines.length);
    for (const [i, w] of ignored.entries()) {
      expect(w.message).toContain(JSON.stringify(e.foreman_ignored_lines[i]).slice(0, 40));
    }
  });
});
