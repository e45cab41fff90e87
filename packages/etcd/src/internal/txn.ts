import type { Txn, TxnOpResult, TxnResult } from '@flotilla/store';
import { type KeySpace, leaseForCompare, leaseForPut } from './keyspace.js';
import { type DecodedTxnResponse, encodeTxn } from './txn-codec.js';

/** etcd's `TxnRequest` for a (validated) store transaction, as protobuf bytes. */
export function toEtcdTxn(txn: Txn, keys: KeySpace): Buffer {
  return encodeTxn(txn, keys, leaseForPut, leaseForCompare);
}

/** Every put's result: one shared, frozen object (a transaction may hold a hundred puts). */
const PUT: TxnOpResult = Object.freeze({ op: 'put' });

/** The store's result of a transaction from etcd's `TxnResponse`. */
export function fromEtcdTxn(txn: Txn, res: DecodedTxnResponse, keys: KeySpace): TxnResult {
  const ops = res.succeeded ? txn.success : (txn.failure ?? []);
  const results = ops.map((op, i): TxnOpResult => {
    const response = res.responses[i];
    switch (op.op) {
      case 'put':
        return PUT;
      case 'delete':
      case 'deletePrefix':
        return { op: op.op, deleted: response?.deleted ?? 0 };
      case 'get': {
        const kv = response?.kvs?.[0];
        return { op: 'get', kv: kv === undefined ? undefined : keys.decodedKeyValue(kv) };
      }
    }
  });
  return { succeeded: res.succeeded, revision: res.revision, results };
}
