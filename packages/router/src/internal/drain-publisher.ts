import { type Clock, type Logger, retry, systemClock } from '@flotilla/core';
import type { Lease, Store } from '@flotilla/store';

/**
 * Writes this router's drained records (`<prefix>drains/<routerId>/<service>/<instanceId>`)
 * under a lease of its own, in order, and writes them again under a new lease if the lease is
 * lost (the store was unreachable past the TTL).
 */
export class DrainPublisher {
  readonly #records = new Map<string, string>();
  /**
   * Drained records not yet reported written, as [service, instanceId]: a write tried under a
   * lease that was lost meanwhile fails for good, and the re-grant that writes it reports it.
   */
  readonly #unreported = new Map<string, [string, string]>();
  #lease: Lease | undefined;
  /** Superseded leases a revoke could not reach (not kept alive: they end with their TTL). */
  readonly #superseded = new Set<Lease>();
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Aborted by close(): a write's pending retry delay ends. */
  readonly #ac = new AbortController();
  readonly #base: string;

  constructor(
    readonly store: Store,
    prefix: string,
    readonly routerId: string,
    readonly ttlMs: number,
    readonly logger: Logger,
    readonly onWritten: (service: string, instanceId: string, drained: boolean) => void,
    /** Times the delays between retried writes. */
    readonly clock: Clock = systemClock,
  ) {
    this.#base = `${prefix}drains/${routerId}/`;
  }

  #leaseId(): string {
    if (this.#lease === undefined)
      throw new Error('router bug: drain record written before the lease was granted');
    return this.#lease.id;
  }

  /**
   * Grants the lease; later writes wait for it. If the store does not answer, the first write
   * grants it (retried as writes are).
   */
  start(): Promise<void> {
    return this.#enqueue(() => this.#grant());
  }

  /** Revokes a lease not used; one whose revoke fails (the store flapped) close() revokes. */
  #discard(lease: Lease): void {
    void lease.revoke().catch(() => this.#superseded.add(lease));
  }

  async #grant(): Promise<void> {
    const lease = await this.store.grant(this.ttlMs);
    try {
      await lease.keepAlive();
    } catch (err) {
      // Not kept alive, it would end at its TTL with the records written under it: this
      // attempt fails (and is retried, see start() and the re-grant below).
      this.#discard(lease);
      throw err;
    }
    // A lease granted by an attempt that failed after it (see below) is not used: revoked.
    const superseded = this.#lease;
    this.#lease = lease;
    if (superseded?.state === 'active') this.#discard(superseded);
    void lease.ended.then((reason) => {
      if (this.#closed || lease !== this.#lease || reason === 'revoked' || reason === 'closed')
        return;
      this.logger.warn({ reason }, 'drain lease lost, writing drained records again');
      // Until it succeeds: the store that could not be reached for a TTL may well still not
      // be; a lost lease given up after one try left this router's records unpublished for
      // good, and every deployer waiting on them waited out its timeout.
      void this.#enqueue(() =>
        this.#persist(
          async () => {
            await this.#grant();
            for (const [key, value] of this.#records) {
              await this.store.put(key, value, { lease: this.#leaseId() });
              this.#reported(key, value);
            }
          },
          () => true,
          () => undefined,
        ),
      );
    });
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn).catch((err: unknown) => {
      if (!this.#closed) this.logger.warn({ err }, 'drain record write failed');
    });
    this.#chain = next;
    return next;
  }

  /**
   * Runs a write until it succeeds, while it is still wanted: a store that is unreachable for
   * a while (a retryable error) delays a drained record, it does not lose it. Closing ends a
   * pending delay.
   */
  async #persist(
    write: () => Promise<unknown>,
    wanted: () => boolean,
    done: () => void,
  ): Promise<void> {
    await retry(
      async () => {
        if (this.#closed || !wanted()) return;
        await write();
        done();
      },
      {
        clock: this.clock,
        signal: this.#ac.signal,
        onRetry: (err, delayMs) =>
          this.logger.warn({ err, delayMs }, 'drain record write failed, retrying'),
      },
    );
  }

  /** The record `key` was written with `value`: reported, if it was not yet. */
  #reported(key: string, value: string): void {
    const who = this.#unreported.get(key);
    if (who === undefined || this.#records.get(key) !== value) return;
    this.#unreported.delete(key);
    this.onWritten(who[0], who[1], true);
  }

  /** Publishes that the instance is drained (no request of this router in flight to it). */
  drained(service: string, instanceId: string): void {
    const key = `${this.#base}${service}/${instanceId}`;
    const value = JSON.stringify({
      routerId: this.routerId,
      service,
      instanceId,
      at: new Date().toISOString(),
    });
    if (this.#records.get(key) !== undefined) return;
    this.#records.set(key, value);
    this.#unreported.set(key, [service, instanceId]);
    void this.#enqueue(() =>
      this.#persist(
        async () => {
          // No lease yet: the store did not answer at start() (the router started anyway).
          if (this.#lease === undefined) await this.#grant();
          await this.store.put(key, value, { lease: this.#leaseId() });
        },
        () => this.#records.get(key) === value,
        () => this.#reported(key, value),
      ),
    );
  }

  /** Withdraws the record: the instance is ready again (or forgotten). */
  undrained(service: string, instanceId: string): void {
    const key = `${this.#base}${service}/${instanceId}`;
    if (!this.#records.delete(key)) return;
    this.#unreported.delete(key);
    void this.#enqueue(() =>
      this.#persist(
        () => this.store.delete(key),
        () => !this.#records.has(key),
        () => this.onWritten(service, instanceId, false),
      ),
    );
  }

  /** Revokes the lease: every record of this router goes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ac.abort();
    await this.#chain;
    await Promise.all(
      [this.#lease, ...this.#superseded].map((l) => l?.revoke().catch(() => undefined)),
    );
  }
}
