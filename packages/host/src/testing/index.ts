/**
 * Test support for `Driver` implementations: the contract suite every driver runs.
 *
 * @packageDocumentation
 */
export { runDriverContract } from './contract.js';
export type { DriverContractOptions } from './contract.js';
