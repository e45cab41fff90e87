import type { ClusterKeys } from '@flotilla/cluster';
import { type Clock, retry } from '@flotilla/core';
import type { Compare, Store, TxnOp } from '@flotilla/store';
import type { KnownJob } from './mirror.js';

/**
 * Garbage collection: deletes the records of a job that ended (its record and its agent's
 * status, in one transaction), unless either changed since the scheduler read them. A delete
 * the store fails is retried with backoff until `signal` aborts: no later event would bring
 * the job back to be collected, and an ended job left with `desired: 'run'` would be run again
 * by an agent that restarts. It also deletes job statuses whose job does not exist (agents
 * cannot write those: `reportJob` checks the job in the same transaction).
 */
export class Collector {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #onError: (err: unknown) => void;
  readonly #collected: (jobId: string) => void;
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: {
    store: Store;
    keys: ClusterKeys;
    clock: Clock;
    signal: AbortSignal;
    onError: (err: unknown) => void;
    /** A job's records were deleted (its transaction succeeded). */
    collected: (jobId: string) => void;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#onError = options.onError;
    this.#collected = options.collected;
  }

  /** Deletes an ended job's records, in the background. */
  collect(job: KnownJob): void {
    const key = this.#keys.job(job.hostId, job.id);
    const statusKey = this.#keys.jobStatus(job.hostId, job.id);
    this.#run(
      [
        { key, target: 'modRevision', op: '==', value: job.rev },
        { key: statusKey, target: 'modRevision', op: '==', value: job.statusRev },
      ],
      [
        { op: 'delete', key },
        { op: 'delete', key: statusKey },
      ],
      () => this.#collected(job.id),
    );
  }

  /** Deletes a job status (at revision `rev`) whose job record does not exist, in the background. */
  collectOrphan(hostId: string, jobId: string, rev: number): void {
    const statusKey = this.#keys.jobStatus(hostId, jobId);
    this.#run(
      [
        { key: this.#keys.job(hostId, jobId), target: 'version', op: '==', value: 0 },
        { key: statusKey, target: 'modRevision', op: '==', value: rev },
      ],
      [{ op: 'delete', key: statusKey }],
    );
  }

  #run(compare: Compare[], success: TxnOp[], done?: () => void): void {
    const p = this.#delete(compare, success, done).finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  /** Waits for the deletes in flight (they stop retrying once `signal` aborts). */
  async drain(): Promise<void> {
    await Promise.all(this.#inflight);
  }

  async #delete(compare: Compare[], success: TxnOp[], done?: () => void): Promise<void> {
    // Not succeeded: the job or its status changed since; the change brings it back here.
    const res = await retry(() => this.#store.txn({ compare, success }, { signal: this.#signal }), {
      clock: this.#clock,
      signal: this.#signal,
      retryable: () => true,
      onRetry: (err) => this.#onError(err),
    }).catch(() => undefined); // aborted: the scheduler closed
    if (res?.succeeded === true) done?.();
  }
}
