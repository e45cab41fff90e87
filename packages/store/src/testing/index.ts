/**
 * Test support for `Store` backends and their users: the contract suite every backend runs,
 * and a store view that can be partitioned.
 *
 * @packageDocumentation
 */
export { runStoreContract, takeEvents } from './contract.js';
export type { StoreContractOptions } from './contract.js';
export { PartitionableStore } from './partitionable-store.js';
