import type { Clock, TimerHandle } from '@flotilla/core';

/**
 * Host failure detection. A host is live while its agent's heartbeat key exists (it is
 * attached to the agent's lease, so it vanishes when the agent dies). When the scheduler
 * starts, hosts found without a heartbeat get a grace period first: their agents may be
 * re-registering after a restart of the whole cluster, and moving every job at once would be
 * worse than waiting a little.
 */
export class HostMonitor {
  readonly #heartbeats = new Set<string>();
  readonly #grace = new Map<string, TimerHandle>();
  readonly #clock: Clock;
  readonly #graceMs: number;
  readonly #onChange: (hostId: string, live: boolean) => void;

  constructor(clock: Clock, graceMs: number, onChange: (hostId: string, live: boolean) => void) {
    this.#clock = clock;
    this.#graceMs = graceMs;
    this.#onChange = onChange;
  }

  /** Whether the host counts as live: a heartbeat, or still in its start-up grace. */
  live(hostId: string): boolean {
    return this.#heartbeats.has(hostId) || this.#grace.has(hostId);
  }

  /** The hosts with a heartbeat now. */
  get beating(): ReadonlySet<string> {
    return this.#heartbeats;
  }

  /** A heartbeat appeared (or was listed). */
  beat(hostId: string): void {
    const was = this.live(hostId);
    this.#heartbeats.add(hostId);
    this.#endGrace(hostId);
    if (!was) this.#onChange(hostId, true);
  }

  /** A heartbeat vanished: the host is down at once. */
  lost(hostId: string): void {
    const was = this.live(hostId);
    this.#heartbeats.delete(hostId);
    this.#endGrace(hostId);
    if (was) this.#onChange(hostId, false);
  }

  /** Gives a host found without a heartbeat at start-up its grace period. */
  grace(hostId: string): void {
    if (this.live(hostId)) return;
    this.#grace.set(
      hostId,
      this.#clock.setTimeout(() => {
        this.#grace.delete(hostId);
        if (!this.#heartbeats.has(hostId)) this.#onChange(hostId, false);
      }, this.#graceMs),
    );
    this.#onChange(hostId, true);
  }

  /** Forgets a host whose record was deleted. */
  forget(hostId: string): void {
    this.#endGrace(hostId);
  }

  /** Cancels every timer. */
  close(): void {
    for (const t of this.#grace.values()) this.#clock.clearTimeout(t);
    this.#grace.clear();
  }

  #endGrace(hostId: string): void {
    const t = this.#grace.get(hostId);
    if (t === undefined) return;
    this.#clock.clearTimeout(t);
    this.#grace.delete(hostId);
  }
}
