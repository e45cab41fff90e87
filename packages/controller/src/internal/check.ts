/**
 * Small strict readers for the controller's records: each throws a {@link RecordFieldError}
 * naming the field, which callers turn into `FLOTILLA_CONTROLLER_INVALID_RECORD` with the key.
 */

/** A field of a record that is not what it must be. */
export class RecordFieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path} ${message}`);
  }
}

export function fail(path: string, message: string): never {
  throw new RecordFieldError(path, message);
}

export function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, unknown>;
}

export function str(v: unknown, path: string, max = 1 << 20): string {
  if (typeof v !== 'string' || v.length > max)
    fail(path, `must be a string of at most ${max} characters`);
  return v;
}

export function int(v: unknown, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max)
    fail(path, `must be a whole number from ${min} to ${max}`);
  return v as number;
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, 'must be true or false');
  return v;
}

export function opt<T>(v: unknown, read: (v: unknown) => T): T | undefined {
  return v === undefined ? undefined : read(v);
}

export function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v))
    fail(path, `must be one of ${values.join(', ')}`);
  return v as T;
}

/** A record of strings, as a null-prototype-free plain object without `__proto__`. */
export function strings(v: unknown, path: string, maxValue = 1 << 20): Record<string, string> {
  const o = obj(v, path);
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(o)) {
    if (k === '__proto__') fail(path, 'must not have a __proto__ key');
    out[k] = str(value, `${path}.${k}`, maxValue);
  }
  return out;
}

/** Drops the undefined fields (exactOptionalPropertyTypes). */
export function compact<T>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
