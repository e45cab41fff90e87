import type { KeyValue, WatchEvent } from '@flotilla/store';
import type { IKeyValue } from 'etcd3';
import type { DecodedKeyValue } from './protobuf.js';
import { compareKeys } from '@flotilla/store';

/** etcd's "\0": as a range end, every key from the start key on. */
const ZERO = Buffer.from([0]);

/** The smallest key greater than every key that starts with `start` (etcd's prefix range end). */
export function prefixEnd(start: Buffer): Buffer {
  for (let i = start.length - 1; i >= 0; i--) {
    const byte = start[i] as number;
    if (byte < 0xff) {
      const end = Buffer.from(start.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return ZERO;
}

/** The fields of etcd's `mvccpb.KeyValue` the store reads; longs as numbers or strings. */
export type KeyValueFields = Pick<IKeyValue, 'key' | 'value'> & {
  readonly create_revision: string | number;
  readonly mod_revision: string | number;
  readonly version: string | number;
  readonly lease: string | number;
};

/** A key range of etcd: `[key, range_end)`. */
export interface EtcdRange {
  readonly key: Buffer;
  readonly range_end: Buffer;
}

/**
 * Maps the store's keys to etcd keys under the store prefix, and back: users never see the
 * prefix.
 */
export class KeySpace {
  readonly #prefix: Buffer;

  constructor(prefix: string) {
    this.#prefix = Buffer.from(prefix, 'utf8');
  }

  /** The UTF-8 bytes of the prefix every etcd key of this store starts with. */
  get prefixBytes(): Buffer {
    return this.#prefix;
  }

  /** The etcd key of a store key. */
  key(key: string): Buffer {
    return Buffer.concat([this.#prefix, Buffer.from(key, 'utf8')]);
  }

  /**
   * The etcd range of every store key that starts with `prefix` (`''`: the whole store); with
   * `before`, only those that sort before it (UTF-8 byte order, etcd's and the store's).
   */
  range(prefix: string, before?: string): EtcdRange {
    const start = this.key(prefix);
    const whole: EtcdRange =
      start.length === 0
        ? { key: ZERO, range_end: ZERO }
        : { key: start, range_end: prefixEnd(start) };
    if (before === undefined) return whole;
    // Up to `before` (exclusive), or the prefix's end if that comes first. ZERO as range_end
    // means "every key from `key` on", so it is never the smaller end.
    const end = this.key(before);
    const isAll = whole.range_end.length === 1 && whole.range_end[0] === 0;
    return {
      key: whole.key,
      range_end: isAll || Buffer.compare(end, whole.range_end) < 0 ? end : whole.range_end,
    };
  }

  /** Like {@link range}, starting strictly after the store key `after`. */
  rangeAfter(prefix: string, after: string | undefined): EtcdRange {
    const whole = this.range(prefix);
    if (after === undefined || compareKeys(after, prefix) < 0) return whole;
    // after + "\0" is the smallest key greater than `after`.
    return { key: this.key(`${after}\u0000`), range_end: whole.range_end };
  }

  /** Some etcd key of the store, for reading the revision. */
  anyKey(): Buffer {
    return this.#prefix.length === 0 ? ZERO : this.#prefix;
  }

  /** The store key of an etcd key. */
  storeKey(key: Buffer): string {
    return key.subarray(this.#prefix.length).toString('utf8');
  }

  /** A store entry from etcd's `mvccpb.KeyValue` as read in place by the txn or watch codec. */
  decodedKeyValue(kv: DecodedKeyValue): KeyValue {
    const key = kv.buf.toString('utf8', kv.keyStart + this.#prefix.length, kv.keyEnd);
    const value = kv.buf.toString('utf8', kv.valueStart, kv.valueEnd);
    // Two literals rather than a spread: this runs for every key a watch delivers.
    if (kv.lease === '0')
      return {
        key,
        value,
        createRevision: kv.create_revision,
        modRevision: kv.mod_revision,
        version: kv.version,
      };
    return {
      key,
      value,
      createRevision: kv.create_revision,
      modRevision: kv.mod_revision,
      version: kv.version,
      lease: kv.lease,
    };
  }

  /** A store entry from etcd's `mvccpb.KeyValue` as etcd3 decodes it. */
  keyValue(kv: KeyValueFields): KeyValue {
    const lease = String(kv.lease);
    return {
      key: this.storeKey(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
      ...(lease === '0' ? {} : { lease }),
    };
  }

  /** A watch event from etcd's `mvccpb.Event` (as the watch codec decodes it). */
  event(ev: { readonly type: 'put' | 'delete'; readonly kv: DecodedKeyValue }): WatchEvent {
    const revision = ev.kv.mod_revision;
    if (ev.type === 'delete') {
      const { buf, keyStart, keyEnd } = ev.kv;
      return {
        type: 'delete',
        kv: {
          key: buf.toString('utf8', keyStart + this.#prefix.length, keyEnd),
          value: '',
          createRevision: 0,
          modRevision: revision,
          version: 0,
        },
        revision,
      };
    }
    return { type: 'put', kv: this.decodedKeyValue(ev.kv), revision };
  }
}

/**
 * etcd's form of a lease id for a put: the id when it can be an etcd lease (a positive int64
 * in canonical decimal), else `'-1'`, which no lease has, so that etcd answers "lease not
 * found" exactly where `MemoryStore` would.
 */
export function leaseForPut(id: string | undefined): string {
  if (id === undefined) return '0';
  return isCanonicalLease(id) && id !== '0' ? id : '-1';
}

/** etcd's form of a lease id in a compare: `'0'` (no lease) is kept. */
export function leaseForCompare(id: string): string {
  return isCanonicalLease(id) ? id : '-1';
}

const INT64_MAX = 2n ** 63n - 1n;

function isCanonicalLease(id: string): boolean {
  return /^(?:0|[1-9][0-9]{0,18})$/.test(id) && BigInt(id) <= INT64_MAX;
}
