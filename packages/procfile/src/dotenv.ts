import { ProcfileError, ProcfileErrorCodes } from './errors.js';
import { readEntries, readOptions } from './internal/arguments.js';
import { quote, toText } from './internal/text.js';

/** One assignment of a `.env` file. */
export interface DotenvEntry {
  readonly key: string;
  /** The value after unquoting (and, in double quotes, `\n` / `\r` expansion). */
  readonly value: string;
  /** 1-based line where the assignment starts. */
  readonly line: number;
}

/** A `.env` line that assigns nothing and was ignored. */
export interface DotenvWarning {
  readonly line: number;
  readonly code: 'invalid-line';
  readonly message: string;
}

/** The result of {@link parseDotenv}. */
export interface Dotenv {
  /** Variables, later assignments winning. A null-prototype object: any key is safe. */
  readonly values: Readonly<Record<string, string>>;
  /** Every assignment in file order, including ones a later line overrides. */
  readonly entries: readonly DotenvEntry[];
  /** One per ignored line that is neither blank nor a `#` comment. */
  readonly warnings: readonly DotenvWarning[];
}

/** Options of {@link parseDotenv}. */
export interface ParseDotenvOptions {
  /** Throw `FLOTILLA_PROCFILE_DOTENV_SYNTAX` on the first invalid line instead of warning. */
  readonly strict?: boolean;
}

// The grammar of Node's dotenv (motdotla/dotenv 16), as one sticky-free global regex over the
// whole text so that quoted values can span lines: optional `export`, a key of [\w.-], `=` (or
// `: `), then a single-, double- or backtick-quoted value or a bare value up to '#', then an
// optional comment.
//
// One change that matches the same assignments: dotenv starts with `^\s*`, whose `\s` also
// crosses line breaks, so at every blank line it ran over all the blank lines after it, and a
// file of n blank lines before a line that assigns nothing took n^2 steps (minutes for a
// megabyte). Here the leading whitespace stops at line breaks (`^` of the `m` flag matches
// after \n, \r, U+2028 and U+2029); an assignment after blank lines is then found from the
// start of its own line instead, with the same key, value and end.
const LEADING_SPACE = String.raw`[^\S\n\r\u2028\u2029]*`;
const KEY = String.raw`([\w.-]+)`;
const ASSIGN = String.raw`(?:\s*=\s*?|:\s+?)`;
const QUOTED = (q: string): string => String.raw`\s*${q}(?:\\${q}|[^${q}])*${q}`;
const VALUE = `(${QUOTED("'")}|${QUOTED('"')}|${QUOTED('`')}|[^#\\r\\n]+)?`;
const ASSIGNMENT = new RegExp(
  String.raw`^${LEADING_SPACE}(?:export\s+)?${KEY}${ASSIGN}${VALUE}\s*(?:#.*)?$`,
  'gmd',
);
const UNQUOTE = /^(['"`])([\s\S]*)\1$/m;
const VALID_KEY = /^[\w.-]+$/;

/**
 * Parses a `.env` file with the rules of Node's dotenv: `KEY=value`, optional `export `, `#`
 * comments, single, double and backtick quotes (quoted values may span lines), `\n` and `\r`
 * expanded only inside double quotes, later keys winning. Lines that assign nothing are reported
 * as warnings with their line number.
 *
 * @param options - left out, or an object; `strict` is a boolean.
 * @throws {@link ProcfileError} `FLOTILLA_PROCFILE_INPUT`, `FLOTILLA_PROCFILE_ENCODING`,
 * `FLOTILLA_PROCFILE_INVALID_ARGUMENT` (options that are not an options object), and in strict
 * mode `FLOTILLA_PROCFILE_DOTENV_SYNTAX`.
 *
 * @example
 * ```ts
 * const env = parseDotenv('export PORT=5000\nGREETING="hello\\nworld" # two lines\n');
 * env.values.PORT; // '5000'
 * env.values.GREETING; // 'hello\nworld'
 * ```
 */
export function parseDotenv(input: string | Uint8Array, options: ParseDotenvOptions = {}): Dotenv {
  const { strict } = readOptions(options, 'parseDotenv');
  const text = toText(input, '.env file').replace(/\r\n?/g, '\n');
  const lines = text.split('\n');
  // Offset of the start of each line, to turn match offsets into line numbers.
  const starts: number[] = [];
  let offset = 0;
  for (const line of lines) {
    starts.push(offset);
    offset += line.length + 1;
  }
  const lineOf = (at: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };

  const values: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: DotenvEntry[] = [];
  const covered = new Uint8Array(lines.length + 1);
  for (const match of text.matchAll(ASSIGNMENT)) {
    const key = match[1] as string;
    const keyAt = (match.indices?.[1] as [number, number])[0];
    const line = lineOf(keyAt);
    const last = lineOf(Math.max(keyAt, (match.index ?? 0) + match[0].length - 1));
    for (let l = line; l <= last; l++) covered[l] = 1;
    const value = unquote(match[2] ?? '');
    values[key] = value;
    entries.push({ key, value, line });
  }

  const warnings: DotenvWarning[] = [];
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    if (covered[line] === 1) continue;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const message = `${quote(raw)} assigns nothing and is ignored: write KEY=value (keys use letters, digits, '_', '.', '-')`;
    if (strict) {
      throw new ProcfileError(ProcfileErrorCodes.DOTENV_SYNTAX, `.env line ${line}: ${message}`, {
        line,
        column: 1,
      });
    }
    warnings.push({ line, code: 'invalid-line', message });
  }
  return { values, entries, warnings };
}

function unquote(raw: string): string {
  const value = raw.trim();
  const quoteChar = value.charAt(0);
  const inner = value.replace(UNQUOTE, '$2');
  return quoteChar === '"' ? inner.replace(/\\n/g, '\n').replace(/\\r/g, '\r') : inner;
}

/**
 * Writes a `.env` file, one `KEY=value` per line, quoting each value only as much as needed so
 * that {@link parseDotenv} (and Node's dotenv) read back exactly the same values.
 *
 * @param vars - a plain record, or entries in order (a later entry of the same key wins on read).
 * @throws {@link ProcfileError} `FLOTILLA_PROCFILE_INVALID_ARGUMENT` when `vars` is neither;
 * `FLOTILLA_PROCFILE_DOTENV_INVALID_KEY` for a key outside
 * `[A-Za-z0-9_.-]+`; `FLOTILLA_PROCFILE_DOTENV_INVALID_VALUE` for a value that holds all three
 * quote characters together with a line break or a literal `\n`, which no dotenv quoting can carry.
 *
 * @example
 * ```ts
 * stringifyDotenv({ PORT: '5000', GREETING: 'hello world # not a comment' });
 * // "PORT=5000\nGREETING='hello world # not a comment'\n"
 * ```
 */
export function stringifyDotenv(
  vars: Readonly<Record<string, string>> | readonly Pick<DotenvEntry, 'key' | 'value'>[],
): string {
  const list = readEntries(vars, 'stringifyDotenv', 'key', 'value');
  let out = '';
  for (const { key, value } of list) {
    if (typeof key !== 'string' || !VALID_KEY.test(key)) {
      throw new ProcfileError(
        ProcfileErrorCodes.DOTENV_INVALID_KEY,
        `.env key ${typeof key === 'string' ? quote(key) : `of type ${typeof key}`} is invalid: use only letters, digits, '_', '.' and '-'`,
        { key: String(key) },
      );
    }
    if (typeof value !== 'string') {
      throw new ProcfileError(
        ProcfileErrorCodes.DOTENV_INVALID_VALUE,
        `.env value of ${quote(key)} must be a string, got ${typeof value}`,
        { key },
      );
    }
    out += `${key}=${encodeValue(key, value)}\n`;
  }
  return out;
}

function encodeValue(key: string, value: string): string {
  if (value === '') return '';
  if (/^[^\s'"`#][^#\r\n\u2028\u2029]*$/.test(value) && value.trim() === value) return value;
  if (!value.includes('\r')) {
    if (!value.includes("'")) return `'${value}'`;
    if (!value.includes('`')) return `\`${value}\``;
  }
  if (!value.includes('"') && !/\\[nr]/.test(value)) {
    return `"${value.replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
  }
  throw new ProcfileError(
    ProcfileErrorCodes.DOTENV_INVALID_VALUE,
    `.env value of ${quote(key)} cannot be written so that it reads back unchanged: it mixes ' " and \` quotes with a line break or a literal \\n; set it another way`,
    { key },
  );
}
