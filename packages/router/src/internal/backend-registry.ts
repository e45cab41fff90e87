import type { Clock, Logger, TimerHandle } from '@flotilla/core';
import type { Discovery } from '@flotilla/discovery';
import type { RouterMetrics } from '../metrics.js';
import { type Backend, type Balancing, BackendSet } from './backend-set.js';
import type { DrainPublisher } from './drain-publisher.js';
import type { UpstreamPool } from './upstream-pool.js';

/** How long the drained record of an instance that left discovery is kept. */
const GONE_RECORD_MS = 5 * 60_000;

/** Options of {@link BackendRegistry}. */
export interface BackendRegistryOptions {
  readonly discovery: Discovery;
  readonly pool: UpstreamPool;
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  readonly balancing: Balancing;
  readonly ejectAfter: number;
  readonly ejectMs: number;
  readonly now: () => number;
  /** Times how long a gone instance's drained record is kept. */
  readonly clock: Clock;
  /** Ends every watch (the router closes). */
  readonly signal: AbortSignal;
  /** Where drained records go (exists once the router listens). */
  readonly drains: () => DrainPublisher | undefined;
  /** Reports an invalid discovery entry or a watch that failed. */
  readonly warn: (err: Error) => void;
}

/**
 * The backend sets of the services some route names, each fed by a discovery watch (ready and
 * unready instances, so that drained records cover instances never routed to), wired to the
 * drained records, the upstream pool and the ejection metrics.
 */
export class BackendRegistry {
  readonly #sets = new Map<
    string,
    { set: BackendSet; ac: AbortController; synced: Promise<void> }
  >();
  /** The pending removals of gone instances' records (cancelled by close()). */
  readonly #goneTimers = new Set<TimerHandle>();

  constructor(readonly options: BackendRegistryOptions) {}

  /** The backends of a service, if some route names it. */
  get(service: string): BackendSet | undefined {
    return this.#sets.get(service)?.set;
  }

  /** Watches a service (once); resolves when its first snapshot is applied, or its watch ended. */
  ensure(service: string): Promise<void> {
    const existing = this.#sets.get(service);
    if (existing !== undefined) return existing.synced;
    const o = this.options;
    const drains = o.drains();
    if (drains === undefined) throw new Error('router bug: backends watched before listen()');
    const ac = new AbortController();
    const signal = AbortSignal.any([ac.signal, o.signal]);
    const set: BackendSet = new BackendSet(service, {
      balancing: o.balancing,
      ejectAfter: o.ejectAfter,
      ejectMs: o.ejectMs,
      maxEjectMs: 30_000,
      now: o.now,
      onDrained: (b: Backend) => {
        drains.drained(service, b.id);
        // An instance that left discovery keeps its record a while (deployers may still be
        // waiting on it), then the record goes, unless the instance came back.
        if (b.gone) {
          const timer = o.clock.setTimeout(() => {
            this.#goneTimers.delete(timer);
            if (set.get(b.id) === undefined) drains.undrained(service, b.id);
          }, GONE_RECORD_MS);
          this.#goneTimers.add(timer);
        }
      },
      onReady: (b: Backend) => drains.undrained(service, b.id),
      onEject: (b: Backend, ms: number) => {
        o.metrics.ejection(service);
        o.logger.warn(
          { service, instance: b.id, addr: b.addr, ms },
          'backend ejected after repeated failures',
        );
      },
      onRetire: (b: Backend) => o.pool.retire(b.addr),
    });
    let synced!: () => void;
    const p = new Promise<void>((resolve) => (synced = resolve));
    this.#sets.set(service, { set, ac, synced: p });
    void (async () => {
      for await (const ev of o.discovery.watch(service, { signal })) {
        switch (ev.kind) {
          case 'current':
            set.reset(ev.instances);
            synced();
            break;
          case 'up':
          case 'update':
            set.upsert(ev.instance);
            if (!ev.instance.ready) o.pool.retire(ev.instance.addr);
            break;
          case 'down':
            set.remove(ev.instance.id);
            break;
          case 'invalid':
            o.warn(ev.error);
            break;
        }
      }
    })()
      .catch((err: unknown) => o.warn(err as Error))
      .finally(synced);
    return p;
  }

  /** Stops watching the services not in `services`. */
  retain(services: ReadonlySet<string>): void {
    for (const [service, entry] of this.#sets) {
      if (!services.has(service)) {
        entry.ac.abort();
        this.#sets.delete(service);
      }
    }
  }

  /** Stops every watch and every pending record removal. */
  close(): void {
    for (const e of this.#sets.values()) e.ac.abort();
    for (const t of this.#goneTimers) this.options.clock.clearTimeout(t);
    this.#goneTimers.clear();
  }
}
