import {
  type DecodedKeyValue,
  type Int64,
  LEN,
  lenSize,
  type Reader,
  readKeyValue,
  readResponse,
  tag,
  VARINT,
  varintSize,
  Writer,
} from './protobuf.js';

/**
 * etcd's `WatchRequest` and `WatchResponse` in protobuf wire format, by hand, as for
 * transactions (see `txn-codec.ts`): a watch delivers every write under its prefix, and
 * etcd3's decoding made an object per event, per key-value and per header with every int64 as
 * a string. Field numbers are etcd's `rpc.proto` and `kv.proto` (etcd 3.4).
 */

/** A `WatchCreateRequest` of the range `[key, rangeEnd)` from `startRevision` (0: now). */
export function encodeWatchCreate(
  key: Buffer,
  rangeEnd: Buffer,
  startRevision: Int64,
  noPut = false,
): Buffer {
  const inner =
    1 +
    lenSize(key.length) +
    1 +
    lenSize(rangeEnd.length) +
    (startRevision === 0 ? 0 : 1 + varintSize(startRevision)) +
    (noPut ? 5 : 0);
  const w = new Writer(1 + lenSize(inner));
  w.varint(tag(1, LEN)); // WatchRequest.create_request
  w.varint(inner);
  w.raw(1, key);
  w.raw(2, rangeEnd);
  if (startRevision !== 0) {
    w.varint(tag(3, VARINT));
    w.varint(startRevision);
  }
  if (noPut) {
    // progress_notify: a watch whose events are filtered can be quiet for hours; etcd's
    // progress responses (every 10 minutes by default, only once the watcher is caught up)
    // move its resume point, so a reconnect does not resume from a compacted revision.
    w.varint(tag(4, VARINT));
    w.varint(1);
    // filters (packed enum): [NOPUT = 0]. etcd drops the puts before queueing them.
    w.varint(tag(5, LEN));
    w.varint(1);
    w.varint(0);
  }
  return w.buf;
}

/** One `mvccpb.Event`. */
export interface DecodedEvent {
  readonly type: 'put' | 'delete';
  readonly kv: DecodedKeyValue;
}

/** etcd's `WatchResponse`, read for what a watch uses. */
export interface DecodedWatchResponse {
  /** `header.revision`: the store revision when etcd sent it. */
  revision: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  events: DecodedEvent[];
}

function readEvent(r: Reader): DecodedEvent {
  // Event { EventType type = 1 (PUT = 0, DELETE = 1); KeyValue kv = 2; KeyValue prev_kv = 3 }
  let type: 'put' | 'delete' = 'put';
  let kv: DecodedKeyValue | undefined;
  while (r.pos < r.end) {
    const t = r.varint();
    if (t === tag(1, VARINT)) type = r.varint() === 1 ? 'delete' : 'put';
    else if (t === tag(2, LEN)) kv = readKeyValue(r.message());
    else r.skip(t & 7);
  }
  if (kv === undefined) throw new Error('etcd sent a watch event without a key-value');
  return { type, kv };
}

/** Reads etcd's `WatchResponse` bytes. Throws on bytes that are not one. */
export function decodeWatchResponse(buf: Buffer): DecodedWatchResponse {
  const res: DecodedWatchResponse = {
    revision: 0,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: '',
    events: [],
  };
  res.revision = readResponse(buf, (t, r) => {
    switch (t) {
      case tag(3, VARINT):
        res.created = r.varint() !== 0;
        return true;
      case tag(4, VARINT):
        res.canceled = r.varint() !== 0;
        return true;
      case tag(5, VARINT):
        res.compactRevision = r.varint();
        return true;
      case tag(6, LEN): {
        const m = r.message();
        res.cancelReason = buf.toString('utf8', m.pos, m.end);
        return true;
      }
      case tag(11, LEN):
        res.events.push(readEvent(r.message()));
        return true;
      default:
        return false; // watch_id (one watch per stream), fragment (never asked for)
    }
  });
  return res;
}
