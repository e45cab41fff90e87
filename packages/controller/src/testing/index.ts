/**
 * Fakes for tests of code that drives a Flotilla controller or cluster: agents without
 * processes, a route table in memory.
 *
 * @packageDocumentation
 */
export { FakeAgents } from './fake-agents.js';
export type { FakeAgentsOptions, FakeJobBehaviour } from './fake-agents.js';
export { MemoryRouteTable } from './memory-route-table.js';
export { runArtifactStoreContract } from './artifact-store-contract.js';
export type { ArtifactStoreContractOptions } from './artifact-store-contract.js';
