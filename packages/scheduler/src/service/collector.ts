import type { ClusterKeys } from '@flotilla/cluster';
import type { Store } from '@flotilla/store';
import type { KnownJob } from './mirror.js';

/**
 * Garbage collection: deletes the records of a job that ended (its record and its agent's
 * status, in one transaction), unless either changed since the scheduler read them.
 */
export class Collector {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #onError: (err: unknown) => void;
  readonly #inflight = new Set<Promise<void>>();

  constructor(store: Store, keys: ClusterKeys, onError: (err: unknown) => void) {
    this.#store = store;
    this.#keys = keys;
    this.#onError = onError;
  }

  /** Deletes an ended job's records, in the background. */
  collect(job: KnownJob): void {
    const statusKey = this.#keys.jobStatus(job.hostId, job.id);
    const p = this.#store
      .txn({
        compare: [
          { key: job.key, target: 'modRevision', op: '==', value: job.rev },
          { key: statusKey, target: 'modRevision', op: '==', value: job.statusRev },
        ],
        success: [
          { op: 'delete', key: job.key },
          { op: 'delete', key: statusKey },
        ],
      })
      .then(
        () => undefined,
        (err: unknown) => this.#onError(err),
      )
      .finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  /** Waits for the deletes in flight. */
  async drain(): Promise<void> {
    await Promise.all(this.#inflight);
  }
}
