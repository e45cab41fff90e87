import type { Clock, TimerHandle } from '@flotilla/core';
import type { JobRecord } from '@flotilla/cluster';

/** A process type that keeps crashing. */
export interface CrashLoop {
  readonly app: string;
  readonly release: string;
  readonly type: string;
  /** Consecutive crashes. */
  readonly crashes: number;
  /** Delay before the next restart, in ms. */
  readonly nextRestartInMs: number;
}

/**
 * Crash backoff per process type (Heroku's restart policy, Nomad's `restart` stanza): a crashed
 * job keeps its slot for a delay that grows with consecutive crashes of its type, then is
 * released to be replaced. A type's count resets after `resetMs` without a crash.
 */
export class CrashBackoff {
  readonly #clock: Clock;
  readonly #delays: readonly number[];
  readonly #resetMs: number;
  readonly #loopAfter: number;
  readonly #crashes = new Map<string, { count: number; lastAt: number }>();
  readonly #held = new Map<string, TimerHandle>();

  constructor(options: {
    clock: Clock;
    delays: readonly number[];
    resetMs: number;
    loopAfter: number;
  }) {
    this.#clock = options.clock;
    this.#delays = options.delays;
    this.#resetMs = options.resetMs;
    this.#loopAfter = options.loopAfter;
  }

  /** Jobs held in backoff now. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether a crashed job is still held. */
  holds(jobId: string): boolean {
    return this.#held.has(jobId);
  }

  /**
   * Records a crash. Calls `release` at once when the delay is 0, else after the delay (unless
   * {@link forget} comes first). Returns a {@link CrashLoop} when the type keeps crashing.
   */
  crashed(job: JobRecord, release: () => void): { delay: number; loop: CrashLoop | undefined } {
    if (this.#held.has(job.id)) return { delay: 0, loop: undefined };
    const key = `${job.app}\u0000${job.release}\u0000${job.type}`;
    const now = this.#clock.now();
    let state = this.#crashes.get(key);
    if (state === undefined || now - state.lastAt >= this.#resetMs)
      state = { count: 0, lastAt: now };
    const delay = this.#delays[Math.min(state.count, this.#delays.length - 1)] ?? 0;
    state.count++;
    state.lastAt = now;
    this.#crashes.set(key, state);
    const loop =
      state.count >= this.#loopAfter
        ? {
            app: job.app,
            release: job.release,
            type: job.type,
            crashes: state.count,
            nextRestartInMs: delay,
          }
        : undefined;
    if (delay <= 0) {
      release();
      return { delay, loop };
    }
    this.#held.set(
      job.id,
      this.#clock.setTimeout(() => {
        this.#held.delete(job.id);
        release();
      }, delay),
    );
    return { delay, loop };
  }

  /** Drops a job's hold (its record is gone). */
  forget(jobId: string): void {
    const t = this.#held.get(jobId);
    if (t === undefined) return;
    this.#clock.clearTimeout(t);
    this.#held.delete(jobId);
  }

  /** Cancels every hold. */
  close(): void {
    for (const t of this.#held.values()) this.#clock.clearTimeout(t);
    this.#held.clear();
  }
}
