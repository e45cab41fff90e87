import type { Clock, TimerHandle } from '@flotilla/core';
import { drainForced, type HostControl } from '@flotilla/cluster';

/** The longest a timer may wait in Node (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Drain deadlines: a timer per draining host whose deadline is ahead, calling `onDue(hostId)`
 * once it has passed, so that the scheduler plans that host's jobs again and stops those still
 * there. Whether a deadline has passed is `drainForced` of `@flotilla/cluster`, on this clock.
 */
export class DrainDeadlines {
  readonly #timers = new Map<string, TimerHandle>();
  readonly #clock: Clock;
  readonly #onDue: (hostId: string) => void;

  constructor(clock: Clock, onDue: (hostId: string) => void) {
    this.#clock = clock;
    this.#onDue = onDue;
  }

  /** Whether the host's drain is past its deadline now. */
  forced(control: HostControl | undefined): boolean {
    return drainForced(control, this.#clock.now());
  }

  /** Follows the operator's settings of a host (undefined: none): arms, moves or drops its timer. */
  track(hostId: string, control: HostControl | undefined): void {
    this.forget(hostId);
    if (control?.drain !== true || control.drainDeadline === undefined) return;
    // Already past: the refresh that follows this change says so.
    if (this.forced(control)) return;
    this.#arm(hostId, control.drainDeadline);
  }

  /** Drops a host's timer (its control or record is gone). */
  forget(hostId: string): void {
    const t = this.#timers.get(hostId);
    if (t === undefined) return;
    this.#clock.clearTimeout(t);
    this.#timers.delete(hostId);
  }

  /** Cancels every timer. */
  close(): void {
    for (const t of this.#timers.values()) this.#clock.clearTimeout(t);
    this.#timers.clear();
  }

  #arm(hostId: string, at: number): void {
    const wait = Math.min(Math.max(0, at - this.#clock.now()), MAX_TIMER_MS);
    this.#timers.set(
      hostId,
      this.#clock.setTimeout(() => {
        this.#timers.delete(hostId);
        // A long deadline waits in steps; a timer that fires a little early waits the rest.
        if (this.#clock.now() < at) this.#arm(hostId, at);
        else this.#onDue(hostId);
      }, wait),
    );
  }
}
