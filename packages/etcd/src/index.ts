/**
 * `EtcdStore`: the Flotilla `Store` (versioned KV, compare-and-set transactions, leases,
 * prefix watches) on a real etcd v3 cluster, for running Flotilla on several machines.
 *
 * @packageDocumentation
 */
export { EtcdStore } from './etcd-store.js';
export type { EtcdAuthOptions, EtcdStoreOptions, EtcdTlsOptions } from './options.js';
export { EtcdError, EtcdErrorCodes } from './errors.js';
export type { EtcdErrorCode, EtcdErrorDetails } from './errors.js';
