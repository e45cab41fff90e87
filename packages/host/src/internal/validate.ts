import { HostError, HostErrorCodes } from '../errors.js';

/** Checks an optional whole-number option in `[min, max]`, returning it or `fallback`. */
export function intOption(
  value: unknown,
  path: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new HostError(
      HostErrorCodes.INVALID_OPTIONS,
      `${path} must be a whole number from ${min} to ${max}, got ${describe(value)}`,
      { path },
    );
  }
  return value;
}

/** A short, safe rendering of a value for an error message (at most 80 characters). */
export function describe(value: unknown): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    s = Object.prototype.toString.call(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
