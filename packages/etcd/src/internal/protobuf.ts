/**
 * The protobuf wire format, the little of it etcd's KV and Watch messages need: varints
 * (int64 as two's complement), length-delimited bytes, and skipping unknown fields. Used by
 * the hand-written codecs of transactions and watches (see `txn-codec.ts`).
 */

// Wire types.
export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const I32 = 5;

/** A field's tag: its number and wire type. */
export const tag = (field: number, wire: number): number => (field << 3) | wire;

export const EMPTY = Buffer.alloc(0);

/** An int64 to write: a safe integer, or a decimal string (lease ids may pass 2^53). */
export type Int64 = number | string;

/** The 64-bit two's complement of an int64 (negative numbers take ten bytes on the wire). */
function uint64(n: Int64): bigint {
  return BigInt.asUintN(64, BigInt(n));
}

export function varintSize(n: Int64): number {
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

export const lenSize = (n: number): number => varintSize(n) + n;

/** A request being written: the bytes and the next position. */
export class Writer {
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

/**
 * etcd's `mvccpb.KeyValue`, read in place: the key and value are where they lie in `buf` (a
 * watch response carries hundreds of them; a Buffer view each was a third of their cost).
 */
export interface DecodedKeyValue {
  buf: Buffer;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  create_revision: number;
  mod_revision: number;
  version: number;
  /** Decimal, as lease ids may pass 2^53; `'0'`: none. */
  lease: string;
}

/** Reads protobuf fields of one message. */
export class Reader {
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

  /** Where the last field read by {@link len} ends. */
  lenEnd = 0;

  /** A length-delimited field: returns where it starts (and sets `lenEnd`); the reader moves past it. */
  len(): number {
    const n = this.varint();
    const start = this.pos;
    if (start + n > this.end) throw truncated();
    this.pos = start + n;
    this.lenEnd = this.pos;
    return start;
  }

  /** A length-delimited field read as a message of its own: a reader over its bytes. */
  message(): Reader {
    const start = this.len();
    return new Reader(this.buf, start, this.lenEnd);
  }

  /**
   * Reads the fields to the end of the message: `field` is given each tag and reads the value
   * of the fields it knows, returning true; the others (false) are skipped.
   */
  fields(field: (t: number) => boolean): void {
    while (this.pos < this.end) {
      const t = this.varint();
      if (!field(t)) this.skip(t & 7);
    }
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

export const truncated = (): Error => new Error('etcd sent a truncated protobuf message');

/** `header.revision` of a response: `r` reads its `ResponseHeader` field. */
export function readRevision(r: Reader): number {
  // ResponseHeader { cluster_id = 1; member_id = 2; revision = 3; raft_term = 4 }
  let revision = 0;
  r.fields((t) => {
    if (t !== tag(3, VARINT)) return false;
    revision = r.varint();
    return true;
  });
  return revision;
}

/**
 * Reads the bytes of an etcd response message (`TxnResponse`, `WatchResponse`, …), returning
 * the revision of its `header` (field 1, in every one): `field` reads the other fields it knows
 * (returning true), the rest are skipped.
 */
export function readResponse(buf: Buffer, field: (t: number, r: Reader) => boolean): number {
  let revision = 0;
  const r = new Reader(buf);
  r.fields((t) => {
    if (t !== tag(1, LEN)) return field(t, r);
    revision = readRevision(r.message());
    return true;
  });
  return revision;
}

/** A `KeyValue`: `r` reads its field. */
export function readKeyValue(r: Reader): DecodedKeyValue {
  const { buf, pos: start } = r;
  const kv: DecodedKeyValue = {
    buf,
    keyStart: start,
    keyEnd: start,
    valueStart: start,
    valueEnd: start,
    create_revision: 0,
    mod_revision: 0,
    version: 0,
    lease: '0',
  };
  // A loop rather than fields(): no closure for each of the hundreds a response carries.
  while (r.pos < r.end) {
    const t = r.varint();
    switch (t) {
      case tag(1, LEN):
        kv.keyStart = r.len();
        kv.keyEnd = r.lenEnd;
        break;
      case tag(2, VARINT):
        kv.create_revision = r.varint();
        break;
      case tag(3, VARINT):
        kv.mod_revision = r.varint();
        break;
      case tag(4, VARINT):
        kv.version = r.varint();
        break;
      case tag(5, LEN):
        kv.valueStart = r.len();
        kv.valueEnd = r.lenEnd;
        break;
      case tag(6, VARINT):
        kv.lease = r.int64();
        break;
      default:
        r.skip(t & 7);
    }
  }
  return kv;
}
