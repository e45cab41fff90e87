import type { Compare, Txn, TxnOp } from '@flotilla/store';
import {
  type DecodedKeyValue,
  EMPTY,
  type Int64,
  LEN,
  lenSize,
  Reader,
  readKeyValue,
  readResponse,
  tag,
  VARINT,
  varintSize,
  Writer,
} from './protobuf.js';

/**
 * etcd's `TxnRequest` and `TxnResponse` in protobuf wire format, by hand. The generic path
 * (etcd3's protobufjs objects) builds an object per compare and op, copies every key and
 * value into a Buffer of its own, encodes, and on the way back turns every put's response
 * header into an object with string longs; for a transaction of a hundred puts that was a
 * fifth of a committing scheduler's CPU. Here a request is one Buffer written in one pass,
 * and a response is read for what the store returns: succeeded, revision, deleted counts and
 * the key-values of gets.
 *
 * Field numbers are etcd's `rpc.proto` and `kv.proto` (etcd 3.4, also in etcd3's `proto/`).
 */

// Compare.CompareResult and Compare.CompareTarget.
const RESULT: Record<Compare['op'], number> = { '==': 0, '>': 1, '<': 2, '!=': 3 };
const TARGET: Record<Compare['target'], number> = {
  version: 0,
  createRevision: 1,
  modRevision: 2,
  value: 3,
  lease: 4,
};
// The field of Compare.target_union for each target.
const UNION_FIELD: Record<Compare['target'], number> = {
  version: 4,
  createRevision: 5,
  modRevision: 6,
  value: 7,
  lease: 8,
};

/** A compare ready to write: its message's size and writer. */
interface Encoded {
  readonly size: number;
  readonly write: (w: Writer) => void;
}

/** What the codec needs of the key space: the etcd prefix and ranges. */
export interface CodecKeys {
  readonly prefixBytes: Buffer;
  range(prefix: string): { key: Buffer; range_end: Buffer };
}

function encodeCompare(c: Compare, keys: CodecKeys, lease: (id: string) => string): Encoded {
  const prefix = keys.prefixBytes;
  const keySize = prefix.length + Buffer.byteLength(c.key, 'utf8');
  const result = RESULT[c.op];
  const target = TARGET[c.target];
  const union = UNION_FIELD[c.target];
  let valueSize: number;
  let writeValue: (w: Writer) => void;
  if (c.target === 'value') {
    const text = c.value;
    const n = Buffer.byteLength(text, 'utf8');
    valueSize = 1 + lenSize(n);
    writeValue = (w) => w.bytes(union, EMPTY, text, n);
  } else {
    const v: Int64 = c.target === 'lease' ? lease(c.value) : c.value;
    valueSize = 1 + varintSize(v);
    writeValue = (w) => {
      w.varint(tag(union, VARINT));
      w.varint(v);
    };
  }
  // Enum fields at their default (0) are left out, as protobuf does.
  const size = (result === 0 ? 0 : 2) + (target === 0 ? 0 : 2) + 1 + lenSize(keySize) + valueSize;
  return {
    size,
    write: (w) => {
      if (result !== 0) {
        w.varint(tag(1, VARINT));
        w.varint(result);
      }
      if (target !== 0) {
        w.varint(tag(2, VARINT));
        w.varint(target);
      }
      w.bytes(3, prefix, c.key, keySize);
      writeValue(w);
    },
  };
}

/** A store op ready to write: its RequestOp field and its message's sizes. */
interface EncodedOp {
  readonly op: TxnOp;
  /** RequestOp field: request_range 1, request_put 2, request_delete_range 3. */
  readonly field: number;
  /** Size of the inner message (PutRequest, RangeRequest, DeleteRangeRequest). */
  readonly size: number;
  /** Size of the etcd key (prefix included); of the value for puts. */
  readonly keySize: number;
  readonly valueSize: number;
  /** etcd lease id of a put (`'0'`: none). */
  readonly lease: string;
}

function encodeOp(
  op: TxnOp,
  keys: CodecKeys,
  lease: (id: string | undefined) => string,
): EncodedOp {
  const prefix = keys.prefixBytes;
  switch (op.op) {
    case 'put': {
      const keySize = prefix.length + Buffer.byteLength(op.key, 'utf8');
      const valueSize = Buffer.byteLength(op.value, 'utf8');
      const id = op.lease === undefined ? '0' : lease(op.lease);
      const size =
        1 +
        lenSize(keySize) +
        (valueSize === 0 ? 0 : 1 + lenSize(valueSize)) +
        (id === '0' ? 0 : 1 + varintSize(id));
      return { op, field: 2, size, keySize, valueSize, lease: id };
    }
    case 'delete':
    case 'get': {
      const keySize = prefix.length + Buffer.byteLength(op.key, 'utf8');
      const field = op.op === 'delete' ? 3 : 1;
      return { op, field, size: 1 + lenSize(keySize), keySize, valueSize: 0, lease: '0' };
    }
    case 'deletePrefix': {
      const range = keys.range(op.prefix);
      const size = 1 + lenSize(range.key.length) + 1 + lenSize(range.range_end.length);
      return { op, field: 3, size, keySize: 0, valueSize: 0, lease: '0' };
    }
  }
}

function writeOp(w: Writer, e: EncodedOp, keys: CodecKeys): void {
  const op = e.op;
  switch (op.op) {
    case 'put':
      w.bytes(1, keys.prefixBytes, op.key, e.keySize);
      if (e.valueSize !== 0) w.bytes(2, EMPTY, op.value, e.valueSize);
      if (e.lease !== '0') {
        w.varint(tag(3, VARINT));
        w.varint(e.lease);
      }
      return;
    case 'delete':
    case 'get':
      w.bytes(1, keys.prefixBytes, op.key, e.keySize);
      return;
    case 'deletePrefix': {
      const range = keys.range(op.prefix);
      w.raw(1, range.key);
      w.raw(2, range.range_end);
      return;
    }
  }
}

/**
 * etcd's `TxnRequest` for a (validated) store transaction, as protobuf bytes. `leaseForPut` and
 * `leaseForCompare` map store lease ids to etcd's (see `keyspace.ts`).
 */
export function encodeTxn(
  txn: Txn,
  keys: CodecKeys,
  leaseForPut: (id: string | undefined) => string,
  leaseForCompare: (id: string) => string,
): Buffer {
  let size = 0;
  const compares: Encoded[] = [];
  for (const c of txn.compare) {
    const enc = encodeCompare(c, keys, leaseForCompare);
    compares.push(enc);
    size += 1 + lenSize(enc.size);
  }
  const success: EncodedOp[] = [];
  const failure: EncodedOp[] = [];
  // RequestOp { oneof request { ... inner ... } }
  const opSize = (e: EncodedOp): number => 1 + lenSize(e.size);
  for (const op of txn.success) {
    const e = encodeOp(op, keys, leaseForPut);
    success.push(e);
    size += 1 + lenSize(opSize(e));
  }
  for (const op of txn.failure ?? []) {
    const e = encodeOp(op, keys, leaseForPut);
    failure.push(e);
    size += 1 + lenSize(opSize(e));
  }
  const w = new Writer(size);
  for (const enc of compares) {
    w.varint(tag(1, LEN));
    w.varint(enc.size);
    enc.write(w);
  }
  const branch = (field: number, ops: EncodedOp[]): void => {
    for (const e of ops) {
      w.varint(tag(field, LEN));
      w.varint(opSize(e));
      w.varint(tag(e.field, LEN));
      w.varint(e.size);
      writeOp(w, e, keys);
    }
  };
  branch(2, success);
  branch(3, failure);
  if (w.pos !== size) throw new Error(`txn encoding wrote ${w.pos} bytes of ${size}`);
  return w.buf;
}

export type { DecodedKeyValue } from './protobuf.js';

/** One op's response: what the store reports of it. */
export interface DecodedResponseOp {
  /** `response_range`: the key-values read. */
  kvs?: DecodedKeyValue[];
  /** `response_delete_range`: how many keys were deleted. */
  deleted?: number;
}

/** etcd's `TxnResponse`, read for what the store returns. */
export interface DecodedTxnResponse {
  succeeded: boolean;
  revision: number;
  responses: DecodedResponseOp[];
}

/** What a put's response carries for the store: nothing (one shared object, a txn holds ~100). */
const PUT_RESPONSE: DecodedResponseOp = Object.freeze({});

function readResponseOp(r: Reader): DecodedResponseOp {
  let op = PUT_RESPONSE; // response_put: nothing the store reports
  // Plain loops, not a closure per message: a transaction answers one op response per op.
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(1, LEN)) {
      // RangeResponse { header = 1; repeated KeyValue kvs = 2; more = 3; count = 4 }
      const kvs: DecodedKeyValue[] = [];
      const inner = r.message();
      while (inner.pos < inner.end) {
        const it = inner.varint();
        if (it === tag(2, LEN)) kvs.push(readKeyValue(inner.message()));
        else inner.skip(it & 7);
      }
      op = { kvs };
    } else if (t === tag(3, LEN)) {
      // DeleteRangeResponse { header = 1; deleted = 2; prev_kvs = 3 }
      let deleted = 0;
      const inner = r.message();
      while (inner.pos < inner.end) {
        const it = inner.varint();
        if (it === tag(2, VARINT)) deleted = inner.varint();
        else inner.skip(it & 7);
      }
      op = { deleted };
    } else r.skip(t & 7);
  }
  return op;
}

/** Reads etcd's `TxnResponse` bytes. Throws on bytes that are not one. */
export function decodeTxnResponse(buf: Buffer): DecodedTxnResponse {
  const res: DecodedTxnResponse = { succeeded: false, revision: 0, responses: [] };
  res.revision = readResponse(buf, (t, r) => {
    switch (t) {
      case tag(2, VARINT):
        res.succeeded = r.varint() !== 0;
        return true;
      case tag(3, LEN): {
        // A put's response (its first and only field: response_put) reports nothing: skipped
        // without a reader of its own, as most ops of a large transaction are puts.
        const start = r.len();
        res.responses.push(
          start < r.lenEnd && r.buf[start] === tag(2, LEN)
            ? PUT_RESPONSE
            : readResponseOp(new Reader(r.buf, start, r.lenEnd)),
        );
        return true;
      }
      default:
        return false;
    }
  });
  return res;
}
