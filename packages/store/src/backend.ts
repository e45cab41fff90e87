/**
 * Building blocks for writing a `Store` backend, shared by MemoryStore, SqliteStore and
 * EtcdStore so that they validate, order, compare and deliver exactly alike.
 */
import { type Clock, systemClock } from '@flotilla/core';
import { StoreError, StoreErrorCodes } from './errors.js';
import type {
  CallOptions,
  Compare,
  KeyValue,
  Lease,
  LeaseEndReason,
  LeaseId,
  StoreLimits,
  Txn,
} from './store.js';

/** The limits of etcd's defaults, which every Flotilla backend enforces. */
export const DEFAULT_LIMITS: StoreLimits = Object.freeze({
  maxTxnOps: 128,
  maxValueBytes: 1024 * 1024,
  // etcd refuses requests over 1.5 MiB (--max-request-bytes); keep room for framing.
  maxRequestBytes: 1_500_000,
});

const encoder = new TextEncoder();

/** UTF-8 length of a string, without allocating for ASCII. */
export function byteLength(s: string): number {
  // Buffer.byteLength is fast but Node-only; count by hand to stay portable.
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/**
 * Orders keys as etcd does: by their UTF-8 bytes, which is Unicode code point order.
 * (JavaScript's `<` compares UTF-16 code units, which puts U+10000.. before U+E000..U+FFFF.)
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
    if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    return x - y;
  }
  return a.length - b.length;
}

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

/** Evaluates one compare against a key's current entry (`undefined` when absent). */
export function evaluateCompare(kv: KeyValue | undefined, c: Compare): boolean {
  let actual: number | string;
  switch (c.target) {
    case 'version':
      actual = kv?.version ?? 0;
      break;
    case 'createRevision':
      actual = kv?.createRevision ?? 0;
      break;
    case 'modRevision':
      actual = kv?.modRevision ?? 0;
      break;
    case 'lease':
      actual = kv?.lease ?? '0';
      break;
    case 'value':
      if (kv === undefined) return false;
      actual = kv.value;
      break;
  }
  const expected = c.value;
  if (c.target === 'lease') {
    return c.op === '==' ? actual === expected : actual !== expected;
  }
  const cmp =
    typeof actual === 'string'
      ? compareBytes(actual, expected as string)
      : actual - (expected as number);
  switch (c.op) {
    case '==':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '>':
      return cmp > 0;
  }
}

function compareBytes(a: string, b: string): number {
  return compareKeys(a, b);
}

/** Rejects with the signal's reason when it has aborted. */
export function throwIfAborted(options: CallOptions | undefined): void {
  options?.signal?.throwIfAborted();
}

/** The error every backend throws once closed. */
export function closedError(what = 'store'): StoreError {
  return new StoreError(StoreErrorCodes.CLOSED, `the ${what} is closed: create a new one`);
}

/**
 * An unbounded queue turned into an `AsyncIterable`: a backend pushes events as they happen,
 * the consumer pulls them in order. Ends on `end()`, fails on `fail(err)`, and ends quietly
 * when the signal aborts.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<T>) => void) | undefined;
  #rejecter: ((e: unknown) => void) | undefined;
  #done = false;
  #error: unknown = undefined;
  #onClose: (() => void) | undefined;
  #iterating = false;

  /**
   * @param signal - ends the iteration when aborted.
   * @param onClose - called once when the consumer stops (break, return, abort, end, fail).
   */
  constructor(signal?: AbortSignal, onClose?: () => void) {
    if (signal?.aborted === true) {
      // Ended before anyone could register it: nothing to release.
      this.#done = true;
      return;
    }
    this.#onClose = onClose;
    signal?.addEventListener('abort', () => this.end(), { once: true });
  }

  /** Whether the queue still accepts events. */
  get open(): boolean {
    return !this.#done;
  }

  /** Number of events waiting to be pulled. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    if (this.#done) return;
    if (this.#waiter !== undefined) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      w({ value: item, done: false });
      return;
    }
    this.#items.push(item);
  }

  /** Ends the iteration after the queued events are pulled. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
    if (this.#waiter !== undefined) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      w({ value: undefined, done: true });
    }
  }

  /** Fails the iteration with `error` after the queued events are pulled. */
  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    this.#release();
    if (this.#rejecter !== undefined) {
      const r = this.#rejecter;
      this.#waiter = undefined;
      this.#rejecter = undefined;
      r(error);
    }
  }

  #release(): void {
    const cb = this.#onClose;
    this.#onClose = undefined;
    cb?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) {
      throw new StoreError(
        StoreErrorCodes.INVALID_ARGUMENT,
        'a watch can be iterated only once: call watch() again',
      );
    }
    this.#iterating = true;
    return {
      next: () => {
        if (this.#head < this.#items.length) {
          const value = this.#items[this.#head++] as T;
          if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
            this.#items = this.#items.slice(this.#head);
            this.#head = 0;
          }
          return Promise.resolve({ value, done: false });
        }
        if (this.#done) {
          if (this.#error !== undefined) {
            const e = this.#error;
            this.#error = undefined;
            return Promise.reject(e);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiter = resolve;
          this.#rejecter = reject;
        });
      },
      return: () => {
        this.#error = undefined;
        this.end();
        this.#items = [];
        this.#head = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** What a backend provides to a {@link LeaseKeeper}. */
export interface LeaseBackend {
  /** Renews the lease once; rejects `FLOTILLA_STORE_LEASE_NOT_FOUND` when it is gone. */
  renew(id: LeaseId, options?: CallOptions): Promise<void>;
  /** Revokes the lease and deletes its keys. Resolves also when it is already gone. */
  revoke(id: LeaseId, options?: CallOptions): Promise<void>;
}

/**
 * The {@link Lease} every backend hands out: keep-alive loop on an injectable clock, idempotent
 * revoke, and the `ended` promise. The backend calls {@link LeaseKeeper.end} when it learns the
 * lease is gone (expired, revoked elsewhere, store closed).
 */
export class LeaseKeeper implements Lease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  readonly ended: Promise<LeaseEndReason>;
  #state: 'active' | 'ended' = 'active';
  #resolveEnded!: (reason: LeaseEndReason) => void;
  #backend: LeaseBackend;
  #clock: Clock;
  #timer: unknown = undefined;
  #keeping = false;
  #retryMs: number;
  #deadline: number;

  constructor(
    id: LeaseId,
    ttlMs: number,
    backend: LeaseBackend,
    options: {
      clock?: Clock;
      retryMs?: number;
      /** Clock time the grant request was sent; the first deadline counts from it. */
      grantedAt?: number;
    } = {},
  ) {
    this.id = id;
    this.ttlMs = ttlMs;
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#retryMs = options.retryMs ?? Math.min(500, Math.max(50, ttlMs / 10));
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    this.#deadline = (options.grantedAt ?? this.#clock.now()) + ttlMs;
  }

  get deadline(): number {
    return this.#deadline;
  }

  async #renewOnce(options?: CallOptions): Promise<void> {
    const sent = this.#clock.now();
    await this.#backend.renew(this.id, options);
    this.#deadline = Math.max(this.#deadline, sent + this.ttlMs);
  }

  get state(): 'active' | 'ended' {
    return this.#state;
  }

  /** Called by the backend: the lease is gone. Idempotent. */
  end(reason: LeaseEndReason): void {
    if (this.#state === 'ended') return;
    this.#state = 'ended';
    this.#keeping = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#resolveEnded(reason);
  }

  async renew(options?: CallOptions): Promise<void> {
    throwIfAborted(options);
    if (this.#state === 'ended') throw this.#notFound();
    try {
      await this.#renewOnce(options);
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCodes.LEASE_NOT_FOUND)
        this.end('expired');
      throw err;
    }
  }

  async keepAlive(options?: CallOptions): Promise<void> {
    if (this.#state === 'ended') throw this.#notFound();
    await this.renew(options);
    if (this.#keeping || this.state === 'ended') return;
    this.#keeping = true;
    this.#schedule(this.ttlMs / 3);
  }

  #schedule(ms: number): void {
    if (!this.#keeping) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#renewOnce().then(
        () => this.#schedule(this.ttlMs / 3),
        (err: unknown) => {
          if (err instanceof StoreError && err.code === StoreErrorCodes.LEASE_NOT_FOUND)
            this.end('expired');
          else if (err instanceof StoreError && err.code === StoreErrorCodes.CLOSED)
            this.end('closed');
          else this.#schedule(this.#retryMs);
        },
      );
    }, ms);
  }

  async revoke(options?: CallOptions): Promise<void> {
    if (this.#state === 'ended') return;
    this.#keeping = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#backend.revoke(this.id, options);
    this.end('revoked');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.revoke();
    } catch (err) {
      if (!(err instanceof StoreError && err.code === StoreErrorCodes.CLOSED)) throw err;
    }
  }

  #notFound(): StoreError {
    return new StoreError(
      StoreErrorCodes.LEASE_NOT_FOUND,
      `lease ${this.id} has ended: grant a new one`,
      { lease: this.id },
    );
  }
}
