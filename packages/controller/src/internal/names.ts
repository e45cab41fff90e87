import { randomBytes, randomInt } from 'node:crypto';
import { ControllerError, ControllerErrorCodes } from '../errors.js';

const APP = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const META_KEY = /^[A-Za-z0-9_.-]{1,128}$/;
/** Largest config value (as the cluster's release record allows). */
export const MAX_CONFIG_VALUE = 256 * 1024;
/** Most bytes of an app's config vars in all (as JSON): releases must fit a store value. */
export const MAX_CONFIG_BYTES = 512 * 1024;
/** Most config vars per app. */
export const MAX_CONFIG_VARS = 1000;

export function invalid(path: string, message: string, app?: string): ControllerError {
  return new ControllerError(ControllerErrorCodes.INVALID_INPUT, message, {
    path,
    ...(app === undefined ? {} : { app }),
  });
}

/** A short, printable rendering of a bad value for a message (no NUL, no huge strings). */
export function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v.slice(0, 64)) : String(v).slice(0, 64);
  // eslint-disable-next-line no-control-regex -- control characters are what is replaced
  return s.replace(/[\0-\x1f\x7f]/g, '?');
}

/** Checks an app name: a DNS label (1 to 63 of `a-z 0-9 -`, starting with a letter, not ending with `-`). */
export function checkAppName(name: unknown, path = 'name'): string {
  if (typeof name !== 'string' || !APP.test(name))
    throw invalid(
      path,
      `${show(name)} is not an app name: use 1 to 63 of a-z 0-9 and -, starting with a letter and not ending with -`,
    );
  return name;
}

const ADJECTIVES = [
  'quiet',
  'brave',
  'calm',
  'eager',
  'fancy',
  'gentle',
  'happy',
  'lively',
  'proud',
  'swift',
  'bold',
  'crisp',
];
const NOUNS = [
  'river',
  'meadow',
  'harbor',
  'forest',
  'comet',
  'breeze',
  'canyon',
  'island',
  'summit',
  'glacier',
  'valley',
  'ember',
];

/** A random app name (`quiet-river-4821`). */
export function randomAppName(): string {
  const pick = (a: readonly string[]): string => a[randomInt(a.length)] as string;
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${randomInt(1000, 10000)}`;
}

/** Checks an app's meta: at most 32 entries, keys `[A-Za-z0-9_.-]`, values up to 1 KiB without NUL. */
export function checkMeta(meta: unknown, path = 'meta'): Record<string, string> {
  if (meta === undefined) return {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
    throw invalid(path, 'meta must be an object of strings');
  const out: Record<string, string> = {};
  const entries = Object.entries(meta);
  if (entries.length > 32) throw invalid(path, `meta has ${entries.length} entries: at most 32`);
  for (const [k, v] of entries) {
    if (!META_KEY.test(k) || k === '__proto__')
      throw invalid(
        `${path}.${k.slice(0, 40)}`,
        `meta key ${show(k)} must be 1 to 128 of A-Z a-z 0-9 _ . -`,
      );
    if (typeof v !== 'string' || v.length > 1024 || v.includes('\0'))
      throw invalid(
        `${path}.${k}`,
        `meta value of ${k} must be a string of at most 1024 characters without NUL`,
      );
    out[k] = v;
  }
  return out;
}

/** Checks a config var name. */
export function checkConfigKey(key: string, path: string): void {
  if (!CONFIG_KEY.test(key) || key.length > 256 || key === '__proto__')
    throw invalid(
      path,
      `config var name ${show(key)} is not valid: use A-Z a-z 0-9 _, not starting with a digit, at most 256 characters`,
    );
}

/** Checks a config patch: names, and values (strings up to 256 KiB without NUL) or null. */
export function checkConfigPatch(patch: unknown): Record<string, string | null> {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw invalid('config', 'the config patch must be an object of names to strings (null unsets)');
  const out: Record<string, string | null> = {};
  const entries = Object.entries(patch);
  if (entries.length > MAX_CONFIG_VARS)
    throw invalid('config', `a patch of ${entries.length} vars: at most ${MAX_CONFIG_VARS}`);
  for (const [k, v] of entries) {
    checkConfigKey(k, `config.${k.slice(0, 40)}`);
    if (v === null) out[k] = null;
    else if (typeof v !== 'string')
      throw invalid(`config.${k}`, `the value of ${k} must be a string, or null to unset it`);
    else if (v.length > MAX_CONFIG_VALUE || v.includes('\0'))
      throw invalid(
        `config.${k}`,
        `the value of ${k} must be at most ${MAX_CONFIG_VALUE} characters, without NUL`,
      );
    else out[k] = v;
  }
  return out;
}

/** Checks and lower-cases a domain name (`www.example.com`, `*.example.com`). */
export function checkHostname(hostname: unknown, path = 'hostname', minLabels = 2): string {
  if (typeof hostname !== 'string' || hostname.length > 253)
    throw invalid(path, `${show(hostname)} is not a domain name`);
  const h = hostname.toLowerCase().replace(/\.$/, '');
  const labels = h.split('.');
  const ok =
    labels.length >= minLabels &&
    labels.every((l, i) => (i === 0 && l === '*') || LABEL.test(l)) &&
    !/^[0-9.]+$/.test(h);
  if (!ok)
    throw invalid(
      path,
      `${show(hostname)} is not a domain name: give labels of a-z 0-9 - joined by dots (a leading *. for a wildcard), at least ${minLabels === 1 ? 'one label' : 'two labels'}`,
    );
  return h;
}

/** A new id: a prefix and 12 hex digits (`b-1a2b3c4d5e6f`). */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Parses a release id (`v3`) or number (3) into its number. */
export function releaseNumber(release: unknown, path = 'release'): number {
  const n =
    typeof release === 'number'
      ? release
      : typeof release === 'string' && /^v[1-9][0-9]{0,8}$/.test(release)
        ? Number(release.slice(1))
        : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 999_999_999)
    throw invalid(path, `${show(release)} is not a release: give v1, v2... or its number`);
  return n;
}

/**
 * The app's release (`v4`) of a cluster release id (`v4`, or `v4-r2` for a retried deploy of
 * it): what a dyno or a one-off shows as its release beside its deployment.
 */
export function appRelease(clusterRelease: string): string {
  return /^(v[0-9]+)/.exec(clusterRelease)?.[1] ?? clusterRelease;
}
