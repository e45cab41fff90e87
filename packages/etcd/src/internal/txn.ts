import type { Compare, Txn, TxnOp, TxnOpResult, TxnResult } from '@flotilla/store';
import {
  CompareResult,
  CompareTarget,
  type ICompare,
  type IRequestOp,
  type ITxnRequest,
  type ITxnResponse,
} from 'etcd3';
import { type KeySpace, leaseForCompare, leaseForPut } from './keyspace.js';

const RESULTS: Record<Compare['op'], CompareResult> = {
  '==': CompareResult.Equal,
  '!=': CompareResult.NotEqual,
  '<': CompareResult.Less,
  '>': CompareResult.Greater,
};

function compare(c: Compare, keys: KeySpace): ICompare {
  const base = { key: keys.key(c.key), result: RESULTS[c.op] };
  switch (c.target) {
    case 'version':
      return { ...base, target: CompareTarget.Version, version: c.value };
    case 'createRevision':
      return { ...base, target: CompareTarget.Create, create_revision: c.value };
    case 'modRevision':
      return { ...base, target: CompareTarget.Mod, mod_revision: c.value };
    case 'value':
      return { ...base, target: CompareTarget.Value, value: Buffer.from(c.value, 'utf8') };
    case 'lease':
      return { ...base, target: CompareTarget.Lease, lease: leaseForCompare(c.value) };
  }
}

function requestOp(op: TxnOp, keys: KeySpace): IRequestOp {
  switch (op.op) {
    case 'put':
      return {
        request_put: {
          key: keys.key(op.key),
          value: Buffer.from(op.value, 'utf8'),
          lease: leaseForPut(op.lease),
        },
      };
    case 'delete':
      return { request_delete_range: { key: keys.key(op.key) } };
    case 'deletePrefix':
      return { request_delete_range: keys.range(op.prefix) };
    case 'get':
      return { request_range: { key: keys.key(op.key) } };
  }
}

/** etcd's `TxnRequest` for a (validated) store transaction. */
export function toEtcdTxn(txn: Txn, keys: KeySpace): ITxnRequest {
  return {
    compare: txn.compare.map((c) => compare(c, keys)),
    success: txn.success.map((op) => requestOp(op, keys)),
    failure: (txn.failure ?? []).map((op) => requestOp(op, keys)),
  };
}

/** The store's result of a transaction from etcd's `TxnResponse`. */
export function fromEtcdTxn(txn: Txn, res: ITxnResponse, keys: KeySpace): TxnResult {
  const ops = res.succeeded ? txn.success : (txn.failure ?? []);
  const results = ops.map((op, i): TxnOpResult => {
    const response = res.responses[i];
    switch (op.op) {
      case 'put':
        return { op: 'put' };
      case 'delete':
      case 'deletePrefix':
        return { op: op.op, deleted: Number(response?.response_delete_range.deleted ?? 0) };
      case 'get': {
        const kv = response?.response_range.kvs[0];
        return { op: 'get', kv: kv === undefined ? undefined : keys.keyValue(kv) };
      }
    }
  });
  return { succeeded: res.succeeded, revision: Number(res.header.revision), results };
}
