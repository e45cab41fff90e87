import type { DiscoveryError } from './errors.js';

/** One registered instance of a service, as every watcher sees it. */
export interface ServiceInstance {
  /** Unique within the service. */
  readonly id: string;
  /** The service it belongs to. */
  readonly service: string;
  /** `host:port` where the instance serves. */
  readonly addr: string;
  /** Free-form string labels: release, zone, version... */
  readonly meta: Readonly<Record<string, string>>;
  /** Whether the instance takes traffic. Routers send only to ready instances. */
  readonly ready: boolean;
  /** ISO 8601 time of the first registration of this id by its registrant. */
  readonly registeredAt: string;
}

/**
 * An event of `Discovery.watch`: first one `current` snapshot, then changes.
 *
 * - `up`, `update`, `down`: an instance appeared, changed, went away (with `readyOnly`:
 *   became ready, changed while ready, became unready or went away).
 * - `invalid`: the entry at `key` is not a valid instance (`error` has code
 *   `FLOTILLA_DISCOVERY_INVALID_RECORD`). The watch counts it as absent: if it replaced an
 *   instance, a `down` for that instance comes first. Reported after the `current` snapshot
 *   (or a relist) that met it, and for every write of one.
 */
export type DiscoveryEvent =
  | { readonly kind: 'current'; readonly instances: readonly ServiceInstance[] }
  | { readonly kind: 'up' | 'update' | 'down'; readonly instance: ServiceInstance }
  | { readonly kind: 'invalid'; readonly key: string; readonly error: DiscoveryError };
