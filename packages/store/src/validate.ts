import { showKey, StoreError, StoreErrorCodes } from './errors.js';
import { byteLength, compareKeys } from './keys.js';
import type {
  CallOptions,
  Compare,
  ListOptions,
  PutOptions,
  StoreLimits,
  Txn,
  WatchOptions,
} from './store.js';

/** The limits of etcd's defaults, which every Flotilla backend enforces. */
export const DEFAULT_LIMITS: StoreLimits = Object.freeze({
  maxTxnOps: 128,
  maxValueBytes: 1024 * 1024,
  // etcd refuses requests over 1.5 MiB (--max-request-bytes); keep room for framing.
  maxRequestBytes: 1_500_000,
  maxWatchBacklog: 1_000_000,
});

/**
 * The longest lease TTL every backend keeps alike: 2^31 - 1 ms (about 24.8 days), the longest
 * delay of a Node timer (a longer one fires at once). etcd itself would take longer TTLs;
 * leases are for liveness, which wants seconds.
 */
export const MAX_LEASE_TTL_MS = 2_147_483_647;

/**
 * The limits of a store: {@link DEFAULT_LIMITS} with `overrides`, each a positive integer
 * (else `FLOTILLA_STORE_INVALID_ARGUMENT`). Frozen.
 */
export function resolveLimits(overrides: Partial<StoreLimits> = {}): StoreLimits {
  if (typeof overrides !== 'object' || overrides === null) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      'limits must be an object of maxTxnOps, maxValueBytes, maxRequestBytes and maxWatchBacklog',
    );
  }
  const limits = { ...DEFAULT_LIMITS };
  for (const name of [
    'maxTxnOps',
    'maxValueBytes',
    'maxRequestBytes',
    'maxWatchBacklog',
  ] as const) {
    const value = overrides[name];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        `limits.${name} must be a positive integer, got ${String(value)}`,
      );
    }
    limits[name] = value;
  }
  return Object.freeze(limits);
}

/**
 * Throws `FLOTILLA_STORE_TOO_LARGE` when `text` (a key, a prefix) alone is over the request
 * limit, which no backend could send. Counts bytes only when the string could be that large.
 */
function checkKeySize(text: string, what: string, limits: StoreLimits | undefined): void {
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
  if (limits === undefined || text.length * 3 <= limits.maxRequestBytes) return;
  const size = byteLength(text);
  if (size > limits.maxRequestBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `${what} ${showKey(text)} is ${size} bytes, over the request limit of ${limits.maxRequestBytes}: use shorter keys`,
    );
  }
}

/**
 * Throws `FLOTILLA_STORE_INVALID_KEY` unless `key` is a non-empty, well-formed string; with
 * `limits`, also `FLOTILLA_STORE_TOO_LARGE` when the key alone is over `maxRequestBytes`.
 */
export function validateKey(
  key: unknown,
  what = 'key',
  limits?: StoreLimits,
): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `${what} must be a non-empty string, got ${key === '' ? 'an empty string' : typeof key}`,
    );
  }
  if (!key.isWellFormed()) {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `${what} ${showKey(key)} holds a lone UTF-16 surrogate and has no UTF-8 form: fix the string`,
      { key },
    );
  }
  checkKeySize(key, what, limits);
}

/**
 * Throws `FLOTILLA_STORE_INVALID_KEY` unless `prefix` is a well-formed string (`''` allowed);
 * with `limits`, also `FLOTILLA_STORE_TOO_LARGE` when it is over `maxRequestBytes`.
 */
export function validatePrefix(prefix: unknown, limits?: StoreLimits): asserts prefix is string {
  if (typeof prefix !== 'string') {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `prefix must be a string, got ${typeof prefix}`,
    );
  }
  if (prefix !== '') validateKey(prefix, 'prefix', limits);
}

/**
 * Validates the arguments of a `watch` call: the prefix (see {@link validatePrefix}), and its
 * options: `fromRevision` a revision; `deletesOnly` a boolean; `before` a well-formed key that
 * sorts after `prefix` (so that the watch covers some keys). Every backend checks them alike.
 */
export function validateWatch(
  prefix: unknown,
  options: WatchOptions,
  limits?: StoreLimits,
): asserts prefix is string {
  validatePrefix(prefix, limits);
  if (typeof options !== 'object' || options === null) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `watch options must be an object, got ${options === null ? 'null' : typeof options}`,
    );
  }
  const { fromRevision, deletesOnly, before } = options as {
    fromRevision?: unknown;
    deletesOnly?: unknown;
    before?: unknown;
  };
  if (fromRevision !== undefined) validateRevision(fromRevision, 'fromRevision');
  if (deletesOnly !== undefined && typeof deletesOnly !== 'boolean') {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `watch option deletesOnly must be a boolean, got ${typeof deletesOnly}`,
    );
  }
  if (before === undefined) return;
  if (typeof before !== 'string' || before === '') {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `watch option before must be a non-empty key, got ${before === '' ? "''" : typeof before}`,
    );
  }
  validateKey(before, 'before', limits);
  if (compareKeys(before, prefix) <= 0) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `watch option before (${showKey(before)}) must sort after the prefix (${showKey(prefix)}): ` +
        'the watch would cover no key',
    );
  }
}

/**
 * Validates the prefix and options of a `list` call: `limit` a positive integer, `after` a
 * well-formed key (`''` means before every key); with `limits`, prefix and `after` together
 * within `maxRequestBytes`. Every backend checks them alike.
 */
export function validateList(prefix: unknown, options: ListOptions, limits?: StoreLimits): void {
  validatePrefix(prefix, limits);
  const { limit, after } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `limit must be a positive integer, got ${String(limit)}`,
    );
  }
  if (after !== undefined && after !== '') {
    validateKey(after, 'after', limits);
    checkKeySize(prefix + after, 'list prefix and after', limits);
  }
}

/** Validates a value and returns its UTF-8 size. */
export function validateValue(key: string, value: unknown, limits: StoreLimits): number {
  checkValue(key, value, limits);
  return byteLength(value);
}

/**
 * Validates a value; returns an upper bound of its UTF-8 size (3 bytes per UTF-16 unit), or
 * its exact size where the bound would be over `maxValueBytes`: counting the bytes of every
 * value of a transaction was a tenth of a busy scheduler's store calls.
 */
function checkValue(key: string, value: unknown, limits: StoreLimits): asserts value is string {
  if (typeof value !== 'string') {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value of ${showKey(key)} must be a string, got ${typeof value}: serialise it first (putJson does)`,
      { key },
    );
  }
  if (!value.isWellFormed()) {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value of ${showKey(key)} holds a lone UTF-16 surrogate and has no UTF-8 form`,
      { key },
    );
  }
  if (value.length * 3 <= limits.maxValueBytes) return;
  const size = byteLength(value);
  if (size > limits.maxValueBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `value of ${showKey(key)} is ${size} bytes, over the limit of ${limits.maxValueBytes}: store large data elsewhere and keep a reference`,
      { key },
    );
  }
}

/** Validates a lease TTL in ms: positive, at most {@link MAX_LEASE_TTL_MS}. */
export function validateTtl(ttlMs: unknown): asserts ttlMs is number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `lease TTL must be a positive number of milliseconds, got ${String(ttlMs)}`,
    );
  }
  if (ttlMs > MAX_LEASE_TTL_MS) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `lease TTL of ${ttlMs} ms is over the longest a lease may have, ${MAX_LEASE_TTL_MS} ms (about 24.8 days): leases are for liveness, renew a shorter one`,
    );
  }
}

/**
 * Validates one put, of a `put` call or a txn op: key, value, lease id type. Returns an upper
 * bound of its size in UTF-8 bytes (key and value), as it counts towards `maxRequestBytes`:
 * 3 bytes per UTF-16 unit (see {@link exactTxnBytes}).
 */
function putSize(key: unknown, value: unknown, lease: unknown, limits: StoreLimits): number {
  validateKey(key);
  checkValue(key, value, limits);
  const size = (key.length + value.length) * 3;
  if (lease !== undefined && typeof lease !== 'string') {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `lease of the put of ${showKey(key)} must be a lease id string, got ${typeof lease}`,
      { key },
    );
  }
  return size;
}

/**
 * Checks a `put` call as every backend must: a non-empty well-formed key, a well-formed
 * string value within `maxValueBytes`, a lease id that is a string, and key plus value within
 * `maxRequestBytes`, all sizes counted in UTF-8 bytes as etcd counts them. It does not check
 * that the lease exists: that is the backend's (`FLOTILLA_STORE_LEASE_NOT_FOUND`).
 *
 * @throws StoreError `FLOTILLA_STORE_INVALID_KEY`, `FLOTILLA_STORE_INVALID_VALUE`,
 *   `FLOTILLA_STORE_INVALID_ARGUMENT` or `FLOTILLA_STORE_TOO_LARGE`.
 */
export function validatePut(
  key: string,
  value: string,
  options: PutOptions | undefined,
  limits: StoreLimits,
): void {
  if (putSize(key, value, options?.lease, limits) <= limits.maxRequestBytes) return;
  const size = byteLength(key) + byteLength(value);
  if (size > limits.maxRequestBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `put of ${showKey(key)} carries ${size} bytes of key and value, over the request limit of ${limits.maxRequestBytes}: store large data elsewhere and keep a reference`,
      { key },
    );
  }
}

/** Validates a revision argument (a positive integer). */
export function validateRevision(revision: unknown, what: string): asserts revision is number {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 1) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `${what} must be a positive integer revision, got ${String(revision)}`,
    );
  }
}

/**
 * Checks a transaction's shape and limits: known compare targets and ops, valid keys and
 * values (as {@link validatePut} checks a put), at most `maxTxnOps` compares and ops per
 * branch, no key written twice in a branch, and every key and value of both branches and the
 * compares within `maxRequestBytes` (UTF-8 bytes).
 */
export function validateTxn(txn: Txn, limits: StoreLimits): void {
  if (
    typeof txn !== 'object' ||
    txn === null ||
    !Array.isArray(txn.compare) ||
    !Array.isArray(txn.success)
  ) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      'txn must be { compare: Compare[], success: TxnOp[], failure?: TxnOp[] }',
    );
  }
  const failure = txn.failure ?? [];
  if (!Array.isArray(failure)) {
    throw new StoreError(StoreErrorCodes.INVALID_ARGUMENT, 'txn.failure must be an array of ops');
  }
  let bytes = 0;
  for (const c of txn.compare) {
    if (typeof c !== 'object' || c === null) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        `txn.compare holds ${c === null ? 'null' : typeof c}: each compare is { key, target, op, value }`,
      );
    }
    validateKey(c.key, 'compare key');
    bytes += c.key.length * 3;
    if (!['==', '!=', '<', '>'].includes(c.op)) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        `compare op must be ==, !=, < or >, got ${String(c.op)}`,
      );
    }
    switch (c.target) {
      case 'version':
      case 'createRevision':
      case 'modRevision':
        if (typeof c.value !== 'number' || !Number.isSafeInteger(c.value)) {
          throw new StoreError(
            StoreErrorCodes.INVALID_ARGUMENT,
            `compare of ${c.target} needs an integer value`,
            { key: c.key },
          );
        }
        break;
      case 'value':
        checkValue(c.key, c.value, limits);
        bytes += c.value.length * 3;
        break;
      case 'lease':
        if (typeof c.value !== 'string') {
          throw new StoreError(
            StoreErrorCodes.INVALID_ARGUMENT,
            'compare of lease needs a lease id string',
            { key: c.key },
          );
        }
        if (c.op === '<' || c.op === '>') {
          throw new StoreError(
            StoreErrorCodes.INVALID_ARGUMENT,
            'compare of lease takes == or != only',
            { key: c.key },
          );
        }
        break;
      default:
        throw new StoreError(
          StoreErrorCodes.INVALID_ARGUMENT,
          `compare target must be version, createRevision, modRevision, value or lease, got ${String((c as Compare).target)}`,
        );
    }
  }
  for (const [name, ops] of [
    ['success', txn.success],
    ['failure', failure],
  ] as const) {
    if (ops.length + txn.compare.length > limits.maxTxnOps) {
      throw new StoreError(
        StoreErrorCodes.TOO_MANY_OPS,
        `txn has ${txn.compare.length} compares and ${ops.length} ${name} ops, over the limit of ${limits.maxTxnOps}: split it into several transactions`,
      );
    }
    const written = new Set<string>();
    const puts: string[] = [];
    const prefixes: string[] = [];
    for (const op of ops) {
      if (typeof op !== 'object' || op === null) {
        throw new StoreError(
          StoreErrorCodes.INVALID_ARGUMENT,
          `txn.${name} holds ${op === null ? 'null' : typeof op}: each op is { op: 'put' | 'delete' | 'deletePrefix' | 'get', ... }`,
        );
      }
      switch (op.op) {
        case 'put':
          bytes += putSize(op.key, op.value, op.lease, limits);
          puts.push(op.key);
          break;
        case 'delete':
        case 'get':
          validateKey(op.key);
          bytes += op.key.length * 3;
          break;
        case 'deletePrefix':
          validatePrefix(op.prefix);
          bytes += op.prefix.length * 3;
          prefixes.push(op.prefix);
          break;
        default:
          throw new StoreError(
            StoreErrorCodes.INVALID_ARGUMENT,
            `txn op must be put, delete, deletePrefix or get, got ${String((op as { op: unknown }).op)}`,
          );
      }
      if (op.op === 'put' || op.op === 'delete') {
        if (written.has(op.key)) {
          throw new StoreError(
            StoreErrorCodes.DUPLICATE_KEY,
            `txn writes ${showKey(op.key)} twice in its ${name} branch: write each key once`,
            { key: op.key },
          );
        }
        written.add(op.key);
      }
    }
    for (const p of prefixes) {
      for (const k of puts) {
        if (k.startsWith(p)) {
          throw new StoreError(
            StoreErrorCodes.DUPLICATE_KEY,
            `txn both deletes prefix ${showKey(p)} and puts ${showKey(k)} under it: split it`,
            { key: k },
          );
        }
      }
    }
  }
  // `bytes` is an upper bound: count exactly only when it is over the limit.
  if (bytes > limits.maxRequestBytes && (bytes = exactTxnBytes(txn)) > limits.maxRequestBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `txn carries ${bytes} bytes of keys and values, over the limit of ${limits.maxRequestBytes}: split it`,
    );
  }
}

/**
 * The UTF-8 bytes of a validated transaction's compare keys and values and of both branches'
 * keys, prefixes and values: what counts towards `maxRequestBytes`.
 */
function exactTxnBytes(txn: Txn): number {
  let bytes = 0;
  for (const c of txn.compare) {
    bytes += byteLength(c.key);
    if (c.target === 'value') bytes += byteLength(c.value);
  }
  for (const ops of [txn.success, txn.failure ?? []]) {
    for (const op of ops) {
      if (op.op === 'deletePrefix') bytes += byteLength(op.prefix);
      else bytes += byteLength(op.key) + (op.op === 'put' ? byteLength(op.value) : 0);
    }
  }
  return bytes;
}

/** Rejects with the signal's reason when it has aborted. */
export function throwIfAborted(options: CallOptions | undefined): void {
  options?.signal?.throwIfAborted();
}
