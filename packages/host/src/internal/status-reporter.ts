import type { ClusterState, JobStatus } from '@flotilla/cluster';
import { type Clock, retry } from '@flotilla/core';

/** A job status as the agent reports it (the store stamps `updatedAt`). */
export type Report = Omit<JobStatus, 'updatedAt'>;

/**
 * Writes one job's observed status. A store that cannot be reached is retried with backoff (a
 * status lost in a partition would leave the scheduler with a stale view for good); a newer
 * status replaces one still waiting, so the newest always wins. Once the agent closes
 * (`signal`), each status gets one attempt: close() must not wait on an unreachable store.
 */
export class StatusReporter {
  readonly #cluster: ClusterState;
  readonly #hostId: string;
  readonly #jobId: string;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #onError: (error: unknown) => void;
  #unreported: Report | undefined;
  #writing: Promise<void> | undefined;

  constructor(options: {
    readonly cluster: ClusterState;
    readonly hostId: string;
    readonly jobId: string;
    readonly clock: Clock;
    readonly signal: AbortSignal;
    /** A write that failed, being retried or given up. */
    readonly onError: (error: unknown) => void;
  }) {
    this.#cluster = options.cluster;
    this.#hostId = options.hostId;
    this.#jobId = options.jobId;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#onError = options.onError;
  }

  /** Resolves once the newest status is written, or given up on close. Never rejects. */
  report(status: Report): Promise<void> {
    this.#unreported = status;
    this.#writing ??= this.#write().finally(() => (this.#writing = undefined));
    return this.#writing;
  }

  async #write(): Promise<void> {
    for (let status = this.#unreported; status !== undefined; status = this.#unreported) {
      this.#unreported = undefined;
      const s = status;
      const write = (): Promise<boolean> => this.#cluster.reportJob(this.#hostId, this.#jobId, s);
      try {
        if (this.#signal.aborted) await write();
        else
          await retry(write, {
            clock: this.#clock,
            signal: this.#signal,
            onRetry: (err) => this.#onError(err),
          });
      } catch (err) {
        if (this.#signal.aborted && err === this.#signal.reason) {
          this.#unreported ??= s; // cut short by close(): one more attempt
          continue;
        }
        this.#onError(err);
      }
    }
  }
}
