import { ClusterError, ClusterErrorCodes } from '../errors.js';
import { isValidTagName, isValidTagValue, MAX_TAG_VALUE_LENGTH, MAX_TAGS } from '../host-tags.js';
import { isValidId, type IdKind } from '../ids.js';

/** Field checks shared by every record parser; each throws INVALID_RECORD naming the field. */
export function fail(path: string, what: string): never {
  throw new ClusterError(ClusterErrorCodes.INVALID_RECORD, `${path} ${what}`, { path });
}

function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

export function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, unknown>;
}

export function id(v: unknown, path: string, kind: IdKind): string {
  if (!isValidId(v))
    fail(path, `must be a valid ${kind} id (1-200 of A-Z a-z 0-9 . _ - @ : +), got ${shown(v)}`);
  return v;
}

export function string(v: unknown, path: string, max = 4096): string {
  if (typeof v !== 'string') fail(path, `must be a string, got ${shown(v)}`);
  if (v.length > max) fail(path, `must be at most ${max} characters, got ${v.length}`);
  if (v.includes('\u0000')) fail(path, 'must not contain NUL characters');
  return v;
}

export function nonEmpty(v: unknown, path: string, max = 4096): string {
  const s = string(v, path, max);
  if (s.trim() === '') fail(path, 'must not be empty');
  return s;
}

export function number(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    fail(path, `must be a number from ${min} to ${max}, got ${shown(v)}`);
  return v;
}

export function integer(v: unknown, path: string, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max)
    fail(path, `must be an integer from ${min} to ${max}, got ${shown(v)}`);
  return v as number;
}

export function boolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `must be true or false, got ${shown(v)}`);
  return v;
}

export function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (!values.includes(v as T)) fail(path, `must be one of ${values.join(', ')}, got ${shown(v)}`);
  return v as T;
}

/** An optional field: undefined stays undefined, anything else is checked. */
export function optional<T>(v: unknown, check: (v: unknown) => T): T | undefined {
  return v === undefined ? undefined : check(v);
}

/** A record of string labels (host tags, constraints): at most 64, keys `A-Z a-z 0-9 . _ / -`. */
export function labels(v: unknown, path: string): Record<string, string> {
  const o = object(v, path);
  const entries = Object.entries(o);
  if (entries.length > MAX_TAGS)
    fail(path, `must have at most ${MAX_TAGS} entries, got ${entries.length}`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (!isValidTagName(k))
      fail(`${path}.${k}`, 'is not a valid label name (1-63 of A-Z a-z 0-9 . _ / -)');
    if (!isValidTagValue(val))
      fail(
        `${path}.${k}`,
        `must be a string of at most ${MAX_TAG_VALUE_LENGTH} characters without NUL, got ${shown(val)}`,
      );
    out[k] = val;
  }
  return out;
}

/** Drops undefined values, so that records compare and serialise alike. */
export function compact<T>(o: { [K in keyof T]-?: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
