/**
 * The Flotilla cluster state store: the `Store` interface (etcd v3 semantics: versioned KV,
 * compare-and-set transactions, leases, prefix watches), `MemoryStore`, JSON helpers, and
 * building blocks for backends. The contract suite is in `@flotilla/store/testing`.
 *
 * @packageDocumentation
 */
export type {
  CallOptions,
  Compare,
  CompareOp,
  CompareTarget,
  DeleteResult,
  KeyValue,
  Lease,
  LeaseEndReason,
  LeaseId,
  ListOptions,
  ListResult,
  PutOptions,
  PutResult,
  Store,
  StoreLimits,
  Txn,
  TxnOp,
  TxnOpResult,
  TxnResult,
  WatchEvent,
  WatchOptions,
} from './store.js';
export { MemoryStore } from './memory-store.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { getJson, parseJson, putJson, toJson } from './json.js';
export type { JsonEntry } from './json.js';
export {
  closedError,
  compactedError,
  leaseNotFoundError,
  showKey,
  StoreError,
  StoreErrorCodes,
} from './errors.js';
export type { LeaseNotFoundOptions, StoreErrorCode, StoreErrorDetails } from './errors.js';
export { byteLength, compareKeys } from './keys.js';
export { evaluateCompare } from './compare.js';
export { EventQueue, revisionSkipper, watchQueue } from './event-queue.js';
export { PrefixWatch } from './prefix-watch.js';
export type { EventQueueOptions } from './event-queue.js';
export { LeaseKeeper } from './lease-keeper.js';
export { listAndWatch } from './list-and-watch.js';
export type { ListAndWatchOptions, ListWatchItem } from './list-and-watch.js';
export type { LeaseBackend } from './lease-keeper.js';
export {
  DEFAULT_LIMITS,
  MAX_LEASE_TTL_MS,
  resolveLimits,
  throwIfAborted,
  validateKey,
  validateList,
  validatePrefix,
  validateWatch,
  validatePut,
  validateRevision,
  validateTtl,
  validateTxn,
  validateValue,
} from './validate.js';
