import type { Compare, Txn, TxnOp } from '@flotilla/store';

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

// Wire types.
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

const tag = (field: number, wire: number): number => (field << 3) | wire;

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

/** An int64 to write: a safe integer, or a decimal string (lease ids may pass 2^53). */
type Int64 = number | string;

/** The 64-bit two's complement of an int64 (negative numbers take ten bytes on the wire). */
function uint64(n: Int64): bigint {
  return BigInt.asUintN(64, BigInt(n));
}

function varintSize(n: Int64): number {
  if (typeof n === 'number' && n >= 0) {
    let size = 1;
    while (n >= 0x80) {
      n = Math.floor(n / 0x80);
      size++;
    }
    return size;
  }
  let u = uint64(n);
  let size = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    size++;
  }
  return size;
}

const lenSize = (n: number): number => varintSize(n) + n;

/** A request being written: the bytes and the next position. */
class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(n: Int64): void {
    const buf = this.buf;
    if (typeof n === 'number' && n >= 0) {
      while (n >= 0x80) {
        buf[this.pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
      buf[this.pos++] = n;
      return;
    }
    let u = uint64(n);
    while (u >= 0x80n) {
      buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    buf[this.pos++] = Number(u);
  }

  /** A bytes field holding `prefix` then the UTF-8 of `text`, of `size` bytes in all. */
  bytes(field: number, prefix: Buffer, text: string, size: number): void {
    this.varint(tag(field, LEN));
    this.varint(size);
    prefix.copy(this.buf, this.pos);
    this.pos += prefix.length;
    this.pos += this.buf.write(text, this.pos);
  }

  raw(field: number, bytes: Buffer): void {
    this.varint(tag(field, LEN));
    this.varint(bytes.length);
    bytes.copy(this.buf, this.pos);
    this.pos += bytes.length;
  }
}

/** How a store op is sent: its RequestOp field and its message's size and writer. */
interface Encoded {
  readonly field: number;
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
    field: 1,
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

const EMPTY = Buffer.alloc(0);

function encodeOp(op: TxnOp, keys: CodecKeys, lease: (id: string | undefined) => string): Encoded {
  const prefix = keys.prefixBytes;
  switch (op.op) {
    case 'put': {
      const keySize = prefix.length + Buffer.byteLength(op.key, 'utf8');
      const valueSize = Buffer.byteLength(op.value, 'utf8');
      const id = lease(op.lease);
      const size =
        1 +
        lenSize(keySize) +
        (valueSize === 0 ? 0 : 1 + lenSize(valueSize)) +
        (id === '0' ? 0 : 1 + varintSize(id));
      return {
        field: 2, // request_put
        size,
        write: (w) => {
          w.bytes(1, prefix, op.key, keySize);
          if (valueSize !== 0) w.bytes(2, EMPTY, op.value, valueSize);
          if (id !== '0') {
            w.varint(tag(3, VARINT));
            w.varint(id);
          }
        },
      };
    }
    case 'delete':
    case 'get': {
      const keySize = prefix.length + Buffer.byteLength(op.key, 'utf8');
      return {
        field: op.op === 'delete' ? 3 : 1, // request_delete_range, request_range
        size: 1 + lenSize(keySize),
        write: (w) => w.bytes(1, prefix, op.key, keySize),
      };
    }
    case 'deletePrefix': {
      const range = keys.range(op.prefix);
      return {
        field: 3, // request_delete_range
        size: 1 + lenSize(range.key.length) + 1 + lenSize(range.range_end.length),
        write: (w) => {
          w.raw(1, range.key);
          w.raw(2, range.range_end);
        },
      };
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
  const parts: { field: number; inner: Encoded | undefined; enc: Encoded }[] = [];
  let size = 0;
  for (const c of txn.compare) {
    const enc = encodeCompare(c, keys, leaseForCompare);
    parts.push({ field: 1, inner: undefined, enc });
    size += 1 + lenSize(enc.size);
  }
  const branch = (ops: readonly TxnOp[], field: number): void => {
    for (const op of ops) {
      const inner = encodeOp(op, keys, leaseForPut);
      // RequestOp { oneof request { ... inner ... } }
      const opSize = 1 + lenSize(inner.size);
      parts.push({ field, inner, enc: inner });
      size += 1 + lenSize(opSize);
    }
  };
  branch(txn.success, 2);
  branch(txn.failure ?? [], 3);
  const w = new Writer(size);
  for (const { field, inner, enc } of parts) {
    w.varint(tag(field, LEN));
    if (inner === undefined) {
      w.varint(enc.size);
    } else {
      w.varint(1 + lenSize(inner.size));
      w.varint(tag(inner.field, LEN));
      w.varint(inner.size);
    }
    enc.write(w);
  }
  if (w.pos !== size) throw new Error(`txn encoding wrote ${w.pos} bytes of ${size}`);
  return w.buf;
}

/** etcd's `mvccpb.KeyValue`, as a range in a transaction returns it. */
export interface DecodedKeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  /** Decimal, as lease ids may pass 2^53; `'0'`: none. */
  lease: string;
}

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

/** Reads protobuf fields of one message. */
class Reader {
  pos: number;
  readonly end: number;
  readonly buf: Buffer;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** A varint as a number (exact up to 2^53, which revisions and counts stay under). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw truncated();
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
    throw new Error('etcd sent a varint over 10 bytes');
  }

  /** A varint int64 as a decimal string (lease ids). */
  int64(): string {
    let u = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw truncated();
      const b = this.buf[this.pos++] as number;
      u |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, u).toString();
      shift += 7n;
    }
    throw new Error('etcd sent a varint over 10 bytes');
  }

  /** A length-delimited field's bounds; the reader moves past it. */
  len(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    if (start + n > this.end) throw truncated();
    this.pos = start + n;
    return [start, start + n];
  }

  skip(wire: number): void {
    switch (wire) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.pos += 8;
        break;
      case LEN:
        this.len();
        return;
      case I32:
        this.pos += 4;
        break;
      default:
        throw new Error(`etcd sent protobuf wire type ${wire}, which this decoder does not know`);
    }
    if (this.pos > this.end) throw truncated();
  }
}

const truncated = (): Error => new Error('etcd sent a truncated protobuf message');

function readRevision(buf: Buffer, start: number, end: number): number {
  // ResponseHeader { cluster_id = 1; member_id = 2; revision = 3; raft_term = 4 }
  const r = new Reader(buf, start, end);
  let revision = 0;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(3, VARINT)) revision = r.varint();
    else r.skip(t & 7);
  }
  return revision;
}

function readKeyValue(buf: Buffer, start: number, end: number): DecodedKeyValue {
  const kv: DecodedKeyValue = {
    key: EMPTY,
    value: EMPTY,
    create_revision: 0,
    mod_revision: 0,
    version: 0,
    lease: '0',
  };
  const r = new Reader(buf, start, end);
  while (r.pos < r.end) {
    const t = r.varint();
    switch (t) {
      case tag(1, LEN): {
        const [s, e] = r.len();
        kv.key = buf.subarray(s, e);
        break;
      }
      case tag(2, VARINT):
        kv.create_revision = r.varint();
        break;
      case tag(3, VARINT):
        kv.mod_revision = r.varint();
        break;
      case tag(4, VARINT):
        kv.version = r.varint();
        break;
      case tag(5, LEN): {
        const [s, e] = r.len();
        kv.value = buf.subarray(s, e);
        break;
      }
      case tag(6, VARINT):
        kv.lease = r.int64();
        break;
      default:
        r.skip(t & 7);
    }
  }
  return kv;
}

function readResponseOp(buf: Buffer, start: number, end: number): DecodedResponseOp {
  const r = new Reader(buf, start, end);
  const op: DecodedResponseOp = {};
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(1, LEN)) {
      // RangeResponse { header = 1; repeated KeyValue kvs = 2; more = 3; count = 4 }
      const [s, e] = r.len();
      const kvs: DecodedKeyValue[] = [];
      const inner = new Reader(buf, s, e);
      while (inner.pos < inner.end) {
        const it = inner.varint();
        if (it === tag(2, LEN)) {
          const [ks, ke] = inner.len();
          kvs.push(readKeyValue(buf, ks, ke));
        } else inner.skip(it & 7);
      }
      op.kvs = kvs;
    } else if (t === tag(3, LEN)) {
      // DeleteRangeResponse { header = 1; deleted = 2; prev_kvs = 3 }
      const [s, e] = r.len();
      let deleted = 0;
      const inner = new Reader(buf, s, e);
      while (inner.pos < inner.end) {
        const it = inner.varint();
        if (it === tag(2, VARINT)) deleted = inner.varint();
        else inner.skip(it & 7);
      }
      op.deleted = deleted;
    } else r.skip(t & 7); // response_put: nothing the store reports
  }
  return op;
}

/** Reads etcd's `TxnResponse` bytes. Throws on bytes that are not one. */
export function decodeTxnResponse(buf: Buffer): DecodedTxnResponse {
  const res: DecodedTxnResponse = { succeeded: false, revision: 0, responses: [] };
  const r = new Reader(buf);
  while (r.pos < r.end) {
    const t = r.varint();
    switch (t) {
      case tag(1, LEN): {
        const [s, e] = r.len();
        res.revision = readRevision(buf, s, e);
        break;
      }
      case tag(2, VARINT):
        res.succeeded = r.varint() !== 0;
        break;
      case tag(3, LEN): {
        const [s, e] = r.len();
        res.responses.push(readResponseOp(buf, s, e));
        break;
      }
      default:
        r.skip(t & 7);
    }
  }
  return res;
}
