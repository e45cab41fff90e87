/**
 * Test support for `Store` backends: the contract suite every backend runs.
 *
 * @packageDocumentation
 */
export { runStoreContract, takeEvents } from './contract.js';
export type { StoreContractOptions } from './contract.js';
