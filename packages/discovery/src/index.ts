/**
 * Service discovery on any Flotilla `Store`: services, instances, TTL heartbeats, readiness,
 * watch (snapshot + events), leader election.
 *
 * @packageDocumentation
 */
export { Discovery } from './discovery.js';
export type {
  DiscoveryEvents,
  DiscoveryOptions,
  DiscoveryWatchOptions,
  ElectOptions,
  RegisterOptions,
} from './discovery.js';
export { Registration } from './registration.js';
export type { RegistrationEvents, RegistrationUpdate } from './registration.js';
export { Election } from './election.js';
export type { ElectionEvents, LeaderInfo } from './election.js';
export type { DiscoveryEvent, ServiceInstance } from './instance.js';
export { DiscoveryError, DiscoveryErrorCodes } from './errors.js';
export type { DiscoveryErrorCode } from './errors.js';
