/** One registered instance of a service, as every watcher sees it. */
export interface ServiceInstance {
  /** Unique within the service. */
  readonly id: string;
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

/** An event of {@link Discovery.watch}: first one `current` snapshot, then changes. */
export type DiscoveryEvent =
  | { readonly kind: 'current'; readonly instances: readonly ServiceInstance[] }
  | { readonly kind: 'up' | 'update' | 'down'; readonly instance: ServiceInstance };
