import { ProcfileError, ProcfileErrorCodes } from '../errors.js';

/** Describes a value of the wrong kind in a message: `null`, `an array`, `a string`... */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `${/^[aeiou]/.test(typeof value) ? 'an' : 'a'} ${typeof value}`;
}

/** The options object of a parser: `undefined` or `{ strict?: boolean }`, else a coded error. */
export function readOptions(options: unknown, fn: string): { readonly strict: boolean } {
  if (options === undefined) return { strict: false };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ProcfileError(
      ProcfileErrorCodes.INVALID_ARGUMENT,
      `${fn} options must be an object such as { strict: true }, or left out; got ${describe(options)}`,
    );
  }
  const { strict } = options as { strict?: unknown };
  if (strict !== undefined && typeof strict !== 'boolean') {
    throw new ProcfileError(
      ProcfileErrorCodes.INVALID_ARGUMENT,
      `${fn} option strict must be true or false, got ${describe(strict)}`,
    );
  }
  return { strict: strict ?? false };
}

/**
 * The entries a stringifier writes: `value` is an array of `{ [field]: ..., [other]: ... }`
 * objects, or a plain record of `field` to `other`. Anything else is a coded error, not a
 * TypeError or a silently empty file.
 */
export function readEntries<F extends string, O extends string>(
  value: unknown,
  fn: string,
  field: F,
  other: O,
): readonly Record<F | O, unknown>[] {
  if (Array.isArray(value)) {
    for (const [i, entry] of value.entries()) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new ProcfileError(
          ProcfileErrorCodes.INVALID_ARGUMENT,
          `${fn}: entry ${i} must be { ${field}, ${other} }, got ${describe(entry)}`,
        );
      }
    }
    return value as Record<F | O, unknown>[];
  }
  const proto: unknown =
    typeof value === 'object' && value !== null ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new ProcfileError(
      ProcfileErrorCodes.INVALID_ARGUMENT,
      `${fn} takes an array of { ${field}, ${other} } or a plain record of ${field} to ${other}, got ${
        proto === undefined ? describe(value) : 'an instance of a class (a Map?)'
      }`,
    );
  }
  return Object.entries(value as Record<string, unknown>).map(
    ([k, v]) => ({ [field]: k, [other]: v }) as Record<F | O, unknown>,
  );
}
