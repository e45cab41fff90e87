/**
 * Test support: the contract suite every `Driver` runs, and `FakeDriver`, which records what it
 * is asked to run.
 *
 * @packageDocumentation
 */
export { runDriverContract } from './contract.js';
export type { DriverContractOptions } from './contract.js';
export { FakeDriver } from './fake-driver.js';
export type { FakeDriverOptions } from './fake-driver.js';
