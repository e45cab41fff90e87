import { ProcfileError, ProcfileErrorCodes } from './errors.js';
import { readEntries, readOptions } from './internal/arguments.js';
import { quote, toText } from './internal/text.js';

/** One process type of a Procfile: `web: bundle exec puma`. */
export interface ProcfileEntry {
  /** The process type name, `[A-Za-z0-9_-]+`. */
  readonly name: string;
  /** The command exactly as written after the colon and its whitespace; the shell interprets it. */
  readonly command: string;
  /** 1-based line number in the file. */
  readonly line: number;
}

/**
 * Why a line got a warning. Every code but `blank-command` and `duplicate-name` marks a line
 * that was ignored (foreman ignores it too).
 *
 * - `leading-whitespace`: the line starts with whitespace (`  web: x`).
 * - `space-before-colon`: whitespace between name and colon (`web : x`).
 * - `missing-command`: nothing after the colon (`web:`).
 * - `invalid-name`: the name has characters other than `A-Z a-z 0-9 _ -` (`web.1: x`).
 * - `missing-colon`: no colon at all (`python manage.py migrate`).
 * - `slash-comment`: a `//` comment, which Procfiles do not have.
 * - `merge-conflict-marker`: a git conflict marker (`<<<<<<< HEAD`).
 * - `blank-command`: kept, but the command is only whitespace (`web: `), so it does nothing.
 * - `duplicate-name`: kept, but the name was already defined; foreman runs both.
 */
export type ProcfileWarningCode =
  | 'leading-whitespace'
  | 'space-before-colon'
  | 'missing-command'
  | 'invalid-name'
  | 'missing-colon'
  | 'slash-comment'
  | 'merge-conflict-marker'
  | 'blank-command'
  | 'duplicate-name';

/** A line the parser ignored or found suspicious, and why. */
export interface ProcfileWarning {
  /** 1-based line number. */
  readonly line: number;
  /** 1-based column of the offending character. */
  readonly column: number;
  readonly code: ProcfileWarningCode;
  /** What is wrong and how to fix it. Quotes at most 80 characters of the line. */
  readonly message: string;
}

/** The result of {@link parseProcfile}. */
export interface Procfile {
  /** Process types in file order; duplicate names are kept, in order, as foreman runs both. */
  readonly entries: readonly ProcfileEntry[];
  /** One warning per ignored non-blank, non-comment line, plus blank commands and duplicates. */
  readonly warnings: readonly ProcfileWarning[];
}

/** Options of {@link parseProcfile}. */
export interface ParseProcfileOptions {
  /**
   * Throw a {@link ProcfileError} instead of warning: on the first ignored line or blank command
   * (`FLOTILLA_PROCFILE_SYNTAX`), on a duplicate name (`FLOTILLA_PROCFILE_DUPLICATE`), and when no
   * process is defined (`FLOTILLA_PROCFILE_EMPTY`). Default false: foreman's behaviour.
   */
  readonly strict?: boolean;
}

// Foreman's rule, /^([A-Za-z0-9_-]+):\s*(.+)$/ in Ruby, written for JavaScript: Ruby's `\s` is
// ASCII whitespace only and its `.` matches everything but "\n" (JavaScript's `\s` and `.` differ
// on U+00A0, U+2028, U+2029 and "\r"). The input line never contains "\n".
const ENTRY = /^([A-Za-z0-9_-]+):[ \t\v\f\r]*([^\n]+)$/;
const NAME = /^[A-Za-z0-9_-]+$/;
const NAME_CHAR = /[A-Za-z0-9_-]/;
const MERGE_MARKER = /^(?:<{7}|={7}|>{7}|\|{7})/;

/**
 * Parses a Procfile the way foreman does: after `\r\n` becomes `\n`, a line defines a process
 * when it matches `^([A-Za-z0-9_-]+):\s*(.+)$`; every other line is ignored. Ignored lines that
 * are neither blank nor `#` comments come back as warnings that say what to fix.
 *
 * Differences from foreman, both documented: a leading UTF-8 byte-order mark is dropped (foreman
 * would lose line 1), and `strict: true` turns warnings into errors.
 *
 * @param input - the Procfile text, or its bytes (decoded as UTF-8).
 * @param options - left out, or an object; `strict` is a boolean.
 * @throws {@link ProcfileError} `FLOTILLA_PROCFILE_INPUT`, `FLOTILLA_PROCFILE_ENCODING`,
 * `FLOTILLA_PROCFILE_INVALID_ARGUMENT` (options that are not an options object), and in
 * strict mode `FLOTILLA_PROCFILE_SYNTAX`, `FLOTILLA_PROCFILE_DUPLICATE`, `FLOTILLA_PROCFILE_EMPTY`.
 *
 * @example
 * ```ts
 * const pf = parseProcfile('web: node server.js\nworker: node worker.js\n');
 * pf.entries; // [{ name: 'web', command: 'node server.js', line: 1 }, { name: 'worker', ... }]
 * for (const w of pf.warnings) console.warn(`Procfile:${w.line}: ${w.message}`);
 * ```
 */
export function parseProcfile(
  input: string | Uint8Array,
  options: ParseProcfileOptions = {},
): Procfile {
  const { strict } = readOptions(options, 'parseProcfile');
  const text = toText(input, 'Procfile');
  const entries: ProcfileEntry[] = [];
  const warnings: ProcfileWarning[] = [];
  const firstLine = new Map<string, number>();

  const lines = text.replaceAll('\r\n', '\n').split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    const match = ENTRY.exec(raw);
    if (match === null) {
      if (isBlankOrComment(raw)) continue;
      const warning = classify(raw, line);
      if (strict) {
        throw new ProcfileError(
          ProcfileErrorCodes.SYNTAX,
          `Procfile line ${line}: ${warning.message}`,
          {
            line,
            column: warning.column,
            reason: warning.code,
          },
        );
      }
      warnings.push(warning);
      continue;
    }
    const name = match[1] as string;
    const command = match[2] as string;
    if (command.trim() === '') {
      const column = name.length + 2;
      const message = `${quote(raw)} gives process ${quote(name)} a command of only whitespace: write the command after the colon`;
      if (strict) {
        throw new ProcfileError(ProcfileErrorCodes.SYNTAX, `Procfile line ${line}: ${message}`, {
          line,
          column,
          processName: name,
          reason: 'blank-command',
        });
      }
      warnings.push({ line, column, code: 'blank-command', message });
    }
    const first = firstLine.get(name);
    if (first !== undefined) {
      const message = `process ${quote(name)} is defined again (first on line ${first}): foreman runs both; rename or remove one`;
      if (strict) {
        throw new ProcfileError(ProcfileErrorCodes.DUPLICATE, `Procfile line ${line}: ${message}`, {
          line,
          column: 1,
          processName: name,
        });
      }
      warnings.push({ line, column: 1, code: 'duplicate-name', message });
    } else {
      firstLine.set(name, line);
    }
    entries.push({ name, command, line });
  }

  if (strict && entries.length === 0) {
    throw new ProcfileError(
      ProcfileErrorCodes.EMPTY,
      'Procfile defines no process: add a line such as "web: node server.js"',
    );
  }
  return { entries, warnings };
}

function isBlankOrComment(raw: string): boolean {
  const trimmed = raw.trimStart();
  return trimmed === '' || trimmed.startsWith('#');
}

/** Says why a non-blank, non-comment line that foreman ignores does not define a process. */
function classify(raw: string, line: number): ProcfileWarning {
  const shown = quote(raw);
  const warn = (code: ProcfileWarningCode, column: number, why: string): ProcfileWarning => ({
    line,
    column,
    code,
    message: `${shown} is ignored: ${why}`,
  });

  if (MERGE_MARKER.test(raw)) {
    return warn(
      'merge-conflict-marker',
      1,
      'it is a git merge-conflict marker; resolve the conflict',
    );
  }
  if (/^\s/.test(raw)) {
    return warn(
      'leading-whitespace',
      1,
      'a process line must start at column 1; remove the leading whitespace',
    );
  }
  if (raw.startsWith('//')) {
    return warn('slash-comment', 1, "Procfile comments start with '#', not '//'");
  }
  const colon = raw.indexOf(':');
  if (colon === -1) {
    return warn(
      'missing-colon',
      raw.length + 1,
      'a process line is "name: command"; add the name and a colon',
    );
  }
  const name = raw.slice(0, colon);
  const trimmedName = name.trimEnd();
  if (trimmedName !== name && NAME.test(trimmedName)) {
    return warn(
      'space-before-colon',
      trimmedName.length + 1,
      `remove the whitespace before ':' (write ${quote(`${trimmedName}: ...`)})`,
    );
  }
  if (NAME.test(name)) {
    return warn(
      'missing-command',
      colon + 2,
      `process ${quote(name)} has no command; write it after the colon`,
    );
  }
  if (name === '') {
    return warn('invalid-name', 1, 'the process name before the colon is empty');
  }
  let bad = 0;
  while (bad < name.length && NAME_CHAR.test(name.charAt(bad))) bad++;
  const char = String.fromCodePoint(name.codePointAt(bad) ?? 0);
  return warn(
    'invalid-name',
    bad + 1,
    `process names may hold only letters A-Z a-z, digits, '_' and '-', not ${JSON.stringify(char)}`,
  );
}

/**
 * Writes a Procfile, one `name: command` line per entry in order, that {@link parseProcfile}
 * reads back to the same names and commands. Duplicate names are written as given.
 *
 * @param processes - entries in order, or a plain record of name to command.
 * @throws {@link ProcfileError} `FLOTILLA_PROCFILE_INVALID_ARGUMENT` when `processes` is
 * neither; `FLOTILLA_PROCFILE_INVALID_NAME` for a name outside `[A-Za-z0-9_-]+`;
 * `FLOTILLA_PROCFILE_INVALID_COMMAND` for a command that is empty, starts with whitespace,
 * holds a line break, or ends in `\r`.
 *
 * @example
 * ```ts
 * stringifyProcfile({ web: 'node server.js', worker: 'node worker.js' });
 * // 'web: node server.js\nworker: node worker.js\n'
 * ```
 */
export function stringifyProcfile(
  processes: readonly Pick<ProcfileEntry, 'name' | 'command'>[] | Readonly<Record<string, string>>,
): string {
  const list = readEntries(processes, 'stringifyProcfile', 'name', 'command');
  let out = '';
  for (const { name, command } of list) {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new ProcfileError(
        ProcfileErrorCodes.INVALID_NAME,
        `process name ${typeof name === 'string' ? quote(name) : `of type ${typeof name}`} is invalid: use only letters A-Z a-z, digits, '_' and '-'`,
        { processName: String(name) },
      );
    }
    const problem = commandProblem(command);
    if (problem !== undefined) {
      throw new ProcfileError(
        ProcfileErrorCodes.INVALID_COMMAND,
        `command of process ${quote(name)} ${problem}`,
        { processName: name },
      );
    }
    out += `${name}: ${command as string}\n`;
  }
  return out;
}

function commandProblem(command: unknown): string | undefined {
  if (typeof command !== 'string') return `must be a string, got ${typeof command}`;
  if (command === '') return 'is empty: give the command to run';
  if (/^[ \t\v\f\r]/.test(command)) {
    return 'starts with whitespace, which a Procfile drops: remove it';
  }
  if (command.includes('\n')) return 'holds a line break: put it on one line (join with && or ;)';
  if (command.endsWith('\r')) return 'ends in a carriage return, which a Procfile drops: remove it';
  return undefined;
}
