import { StoreError, StoreErrorCodes } from './errors.js';
import { byteLength } from './keys.js';
import type { CallOptions, Compare, ListOptions, StoreLimits, Txn } from './store.js';

/** The limits of etcd's defaults, which every Flotilla backend enforces. */
export const DEFAULT_LIMITS: StoreLimits = Object.freeze({
  maxTxnOps: 128,
  maxValueBytes: 1024 * 1024,
  // etcd refuses requests over 1.5 MiB (--max-request-bytes); keep room for framing.
  maxRequestBytes: 1_500_000,
});

/** Throws `FLOTILLA_STORE_INVALID_KEY` unless `key` is a non-empty, well-formed string. */
export function validateKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `${what} must be a non-empty string, got ${key === '' ? 'an empty string' : typeof key}`,
    );
  }
  if (!key.isWellFormed()) {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `${what} ${JSON.stringify(key)} holds a lone UTF-16 surrogate and has no UTF-8 form: fix the string`,
      { key },
    );
  }
}

/** Throws `FLOTILLA_STORE_INVALID_KEY` unless `prefix` is a well-formed string ('' allowed). */
export function validatePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') {
    throw new StoreError(
      StoreErrorCodes.INVALID_KEY,
      `prefix must be a string, got ${typeof prefix}`,
    );
  }
  if (prefix !== '') validateKey(prefix, 'prefix');
}

/**
 * Validates the prefix and options of a `list` call: `limit` a positive integer, `after` a
 * well-formed key (`''` means before every key). Every backend checks them alike.
 */
export function validateList(prefix: unknown, options: ListOptions): void {
  validatePrefix(prefix);
  const { limit, after } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `limit must be a positive integer, got ${String(limit)}`,
    );
  }
  if (after !== undefined && after !== '') validateKey(after, 'after');
}

/** Validates a value and returns its UTF-8 size. */
export function validateValue(key: string, value: unknown, limits: StoreLimits): number {
  if (typeof value !== 'string') {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value of ${JSON.stringify(key)} must be a string, got ${typeof value}: serialise it first (putJson does)`,
      { key },
    );
  }
  if (!value.isWellFormed()) {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value of ${JSON.stringify(key)} holds a lone UTF-16 surrogate and has no UTF-8 form`,
      { key },
    );
  }
  const size = byteLength(value);
  if (size > limits.maxValueBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `value of ${JSON.stringify(key)} is ${size} bytes, over the limit of ${limits.maxValueBytes}: store large data elsewhere and keep a reference`,
      { key },
    );
  }
  return size;
}

/** Validates a TTL in ms. */
export function validateTtl(ttlMs: unknown): asserts ttlMs is number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new StoreError(
      StoreErrorCodes.INVALID_ARGUMENT,
      `lease TTL must be a positive number of milliseconds, got ${String(ttlMs)}`,
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
 * values, at most `maxTxnOps` ops per branch, no key written twice in a branch, total size
 * within `maxRequestBytes`.
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
    validateKey(c.key, 'compare key');
    bytes += byteLength(c.key);
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
        bytes += validateValue(c.key, c.value, limits);
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
    const prefixes: string[] = [];
    for (const op of ops) {
      switch (op.op) {
        case 'put':
          validateKey(op.key);
          bytes += byteLength(op.key) + validateValue(op.key, op.value, limits);
          if (op.lease !== undefined && typeof op.lease !== 'string') {
            throw new StoreError(
              StoreErrorCodes.INVALID_ARGUMENT,
              'lease must be a lease id string',
              { key: op.key },
            );
          }
          break;
        case 'delete':
        case 'get':
          validateKey(op.key);
          bytes += byteLength(op.key);
          break;
        case 'deletePrefix':
          validatePrefix(op.prefix);
          bytes += byteLength(op.prefix);
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
            `txn writes ${JSON.stringify(op.key)} twice in its ${name} branch: write each key once`,
            { key: op.key },
          );
        }
        written.add(op.key);
      }
    }
    for (const p of prefixes) {
      for (const k of written) {
        if (k.startsWith(p) && ops.some((o) => o.op === 'put' && o.key === k)) {
          throw new StoreError(
            StoreErrorCodes.DUPLICATE_KEY,
            `txn both deletes prefix ${JSON.stringify(p)} and puts ${JSON.stringify(k)} under it: split it`,
            { key: k },
          );
        }
      }
    }
  }
  if (bytes > limits.maxRequestBytes) {
    throw new StoreError(
      StoreErrorCodes.TOO_LARGE,
      `txn carries ${bytes} bytes of keys and values, over the limit of ${limits.maxRequestBytes}: split it`,
    );
  }
}

/** Rejects with the signal's reason when it has aborted. */
export function throwIfAborted(options: CallOptions | undefined): void {
  options?.signal?.throwIfAborted();
}

/** The error every backend throws once closed. */
export function closedError(what = 'store'): StoreError {
  return new StoreError(StoreErrorCodes.CLOSED, `the ${what} is closed: create a new one`);
}
