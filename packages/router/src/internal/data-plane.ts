import type { RouterMetrics } from '../metrics.js';
import type { BackendSet } from './backend-set.js';
import type { HeadLimits } from './http-head.js';
import type { RouteMatcher } from './route-matcher.js';
import type { StickyCookies } from './sticky.js';
import type { UpstreamPool } from './upstream-pool.js';

/** One access-log entry. */
export interface AccessEntry {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  readonly route: string | undefined;
  readonly backend: string | undefined;
  readonly requestId: string;
  readonly remoteAddr: string;
  readonly retries: number;
}

/** What a client connection needs from its router: the shared, live state of the data plane. */
export interface DataPlane {
  readonly matcher: RouteMatcher;
  backends(service: string): BackendSet | undefined;
  readonly pool: UpstreamPool;
  readonly limits: HeadLimits;
  /** A head not complete this long after it began gets 408. */
  readonly headersTimeoutMs: number;
  /** A keep-alive connection idle this long is closed. */
  readonly idleTimeoutMs: number;
  /** A client that takes nothing of what was written to it this long is cut off. */
  readonly sendTimeoutMs: number;
  /** A backend that has not answered a request's head this long gets the client a 504. */
  readonly upstreamTimeoutMs: number;
  /** Most retries of one request on other backends. */
  readonly maxRetries: number;
  /** The HTTPS port to redirect to (443 is left out of URLs). */
  readonly httpsPort: number | undefined;
  readonly sticky: StickyCookies;
  readonly metrics: RouterMetrics;
  accessLog: ((entry: AccessEntry) => void) | undefined;
  requestId(): string;
  now(): number;
}
