/**
 * The Flotilla router: HTTP/HTTPS/TCP with routes in the store and backends from discovery;
 * balancing, retries, passive health, draining, websockets, sticky sessions, TLS by SNI and
 * HTTP/2, hardening against smuggling and slowloris, Prometheus metrics and an access log.
 *
 * @packageDocumentation
 */
export { Router } from './router.js';
export type {
  AccessLogDestination,
  ListenOptions,
  RouterAddresses,
  RouterEvents,
  RouterOptions,
  RouterState,
} from './router.js';
export { RouteTable, DEFAULT_ROUTER_PREFIX, parseRouteRecord } from './route-table.js';
export type { RouteTableOptions } from './route-table.js';
export { validateRoute, isRouteId } from './route.js';
export type { HttpRoute, Route, StoredRoute, TcpRoute } from './route.js';
export { CertificateTable } from './certificate-table.js';
export type { Certificate } from './certificate-table.js';
export { waitForDrained, DEFAULT_ROUTER_SERVICE } from './wait-for-drained.js';
export type { WaitForDrainedOptions } from './wait-for-drained.js';
export { RouterMetrics } from './metrics.js';
export type { Balancing } from './internal/backend-set.js';
export { RouterError, RouterErrorCodes } from './errors.js';
export type { RouterErrorCode } from './errors.js';
