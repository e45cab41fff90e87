import type { Txn, TxnOp, TxnOpResult, TxnResult } from '@flotilla/store';
import { type KeySpace, leaseForCompare, leaseForPut } from './keyspace.js';
import { type DecodedTxnResponse, encodeTxn } from './txn-codec.js';

/** etcd's `TxnRequest` for a (validated) store transaction, as protobuf bytes. */
export function toEtcdTxn(txn: Txn, keys: KeySpace): Buffer {
  return encodeTxn(txn, keys, leaseForPut, leaseForCompare);
}

/** Every put's result: one shared, frozen object (a transaction may hold a hundred puts). */
const PUT: TxnOpResult = Object.freeze({ op: 'put' });

/**
 * What reading a transaction's answer needs of it: the kind of each op of each branch. Kept in
 * place of the transaction while it is in flight, so that its keys and values can be collected
 * as soon as they are encoded: held for the round trip, a bulk commit's values lived long
 * enough to be promoted, and copying them was a large part of the scheduler's collections.
 */
export interface TxnShape {
  readonly success: readonly TxnOp['op'][];
  readonly failure: readonly TxnOp['op'][];
}

/** The {@link TxnShape} of a transaction. */
export function txnShape(txn: Txn): TxnShape {
  return { success: txn.success.map((o) => o.op), failure: (txn.failure ?? []).map((o) => o.op) };
}

/** The store's result of a transaction from etcd's `TxnResponse`. */
export function fromEtcdTxn(shape: TxnShape, res: DecodedTxnResponse, keys: KeySpace): TxnResult {
  const ops = res.succeeded ? shape.success : shape.failure;
  const results = ops.map((op, i): TxnOpResult => {
    const response = res.responses[i];
    switch (op) {
      case 'put':
        return PUT;
      case 'delete':
      case 'deletePrefix':
        return { op, deleted: response?.deleted ?? 0 };
      case 'get': {
        const kv = response?.kvs?.[0];
        return { op: 'get', kv: kv === undefined ? undefined : keys.decodedKeyValue(kv) };
      }
    }
  });
  return { succeeded: res.succeeded, revision: res.revision, results };
}
