import type { ClusterKeys } from '@flotilla/cluster';
import { type Clock, sleep } from '@flotilla/core';
import type { Store } from '@flotilla/store';
import type { KnownJob } from './mirror.js';

/**
 * Garbage collection: deletes the records of a job that ended (its record and its agent's
 * status, in one transaction), unless either changed since the scheduler read them. A delete
 * the store fails is retried with backoff until `signal` aborts: no later event would bring
 * the job back to be collected, and an ended job left with `desired: 'run'` would be run again
 * by an agent that restarts.
 */
export class Collector {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #onError: (err: unknown) => void;
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: {
    store: Store;
    keys: ClusterKeys;
    clock: Clock;
    signal: AbortSignal;
    onError: (err: unknown) => void;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#onError = options.onError;
  }

  /** Deletes an ended job's records, in the background. */
  collect(job: KnownJob): void {
    const p = this.#collect(job).finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  /** Waits for the deletes in flight (they stop retrying once `signal` aborts). */
  async drain(): Promise<void> {
    await Promise.all(this.#inflight);
  }

  async #collect(job: KnownJob): Promise<void> {
    const statusKey = this.#keys.jobStatus(job.hostId, job.id);
    let delay = 100;
    while (!this.#signal.aborted) {
      try {
        // Not succeeded: the job or its status changed since; the change brings it back here.
        await this.#store.txn({
          compare: [
            { key: job.key, target: 'modRevision', op: '==', value: job.rev },
            { key: statusKey, target: 'modRevision', op: '==', value: job.statusRev },
          ],
          success: [
            { op: 'delete', key: job.key },
            { op: 'delete', key: statusKey },
          ],
        });
        return;
      } catch (err) {
        this.#onError(err);
        await sleep(this.#clock, delay, this.#signal);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}
