import {
  type ClusterKeys,
  decodeRecord,
  jobState,
  type JobRecord,
  type JobState,
  type JobStatus,
} from '@flotilla/cluster';
import type { Clock, Logger } from '@flotilla/core';
import { listAndWatch, type KeyValue, type Store } from '@flotilla/store';
import { Notifier } from './notifier.js';

/** A job as the mirror knows it. */
export interface MirroredJob {
  readonly record: JobRecord;
  readonly status: JobStatus | undefined;
  readonly state: JobState;
}

/** A change the mirror saw: a job's derived state, before and after (undefined: absent). */
export interface JobChange {
  readonly job: MirroredJob | undefined;
  readonly jobId: string;
  readonly previous: JobState | undefined;
  /** The record as last known (for a job that went away). */
  readonly record: JobRecord | undefined;
}

/**
 * Every job of the cluster and its status, kept current from two `listAndWatch` loops (job
 * records, job statuses): what deploys wait on and what `job.state` events come from. Records
 * that cannot be read are reported through `onInvalid`, never skipped silently.
 */
export class JobMirror {
  readonly changed = new Notifier();
  readonly #records = new Map<string, JobRecord>();
  readonly #statuses = new Map<string, JobStatus>();
  readonly #listeners = new Set<(change: JobChange) => void>();
  readonly #abort = new AbortController();
  #loops: Promise<void>[] = [];
  #readyCount = 0;
  /** Why a watch loop ended, when it did other than by close(): waiters give up on it. */
  failure: unknown;
  #ready!: () => void;
  readonly ready = new Promise<void>((resolve) => (this.#ready = resolve));

  constructor(
    readonly store: Store,
    readonly keys: ClusterKeys,
    readonly clock: Clock,
    readonly logger: Logger,
    readonly onInvalid: (err: unknown) => void,
  ) {}

  start(): void {
    this.#loops = [this.#loop(this.keys.jobs), this.#loop(this.keys.jobStatuses)];
  }

  /** Subscribes to changes; returns the unsubscribe. */
  subscribe(listener: (change: JobChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The jobs of an app (optionally of some releases and a type). */
  jobs(app: string, filter: { releases?: ReadonlySet<string>; type?: string } = {}): MirroredJob[] {
    const out: MirroredJob[] = [];
    for (const record of this.#records.values()) {
      if (record.app !== app) continue;
      if (filter.type !== undefined && record.type !== filter.type) continue;
      if (filter.releases !== undefined && !filter.releases.has(record.release)) continue;
      out.push(this.#view(record));
    }
    return out;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
  }

  #view(record: JobRecord): MirroredJob {
    const status = this.#statuses.get(record.id);
    return { record, status, state: jobState(record, status) };
  }

  #state(jobId: string): JobState | undefined {
    const record = this.#records.get(jobId);
    return record === undefined ? undefined : jobState(record, this.#statuses.get(jobId));
  }

  async #loop(prefix: string): Promise<void> {
    const signal = this.#abort.signal;
    let first = true;
    try {
      for await (const item of listAndWatch(this.store, prefix, {
        signal,
        clock: this.clock,
        onRetry: (err) => this.logger.warn({ err }, 'job watch: store unreachable, retrying'),
      })) {
        if (item.type === 'snapshot') {
          const seen = new Set<string>();
          for (const kv of item.kvs) {
            const id = this.#apply(kv, 'put');
            if (id !== undefined) seen.add(id);
          }
          if (item.reset) {
            const map = prefix === this.keys.jobs ? this.#records : this.#statuses;
            for (const id of [...map.keys()]) if (!seen.has(id)) this.#remove(prefix, id);
          }
          if (first) {
            first = false;
            if (++this.#readyCount === 2) this.#ready();
          }
        } else this.#apply(item.event.kv, item.event.type);
        this.changed.notify();
      }
    } catch (err) {
      if (!signal.aborted) {
        this.failure = err;
        this.onInvalid(err);
        this.changed.notify();
      }
    }
  }

  /** Applies one key's change; returns the job id it concerned. */
  #apply(kv: KeyValue, type: 'put' | 'delete'): string | undefined {
    const where = this.keys.parse(kv.key);
    if (where === undefined || (where.kind !== 'job' && where.kind !== 'job-status'))
      return undefined;
    if (type === 'delete') {
      this.#remove(where.kind === 'job' ? this.keys.jobs : this.keys.jobStatuses, where.jobId);
      return where.jobId;
    }
    let decoded;
    try {
      decoded = decodeRecord(this.keys, kv);
    } catch (err) {
      this.onInvalid(err);
      return undefined;
    }
    if (decoded === undefined) return undefined;
    const previous = this.#state(where.jobId);
    if (decoded.kind === 'job') this.#records.set(decoded.jobId, decoded.record);
    else if (decoded.kind === 'job-status') this.#statuses.set(decoded.jobId, decoded.record);
    else return undefined;
    this.#emit(where.jobId, previous);
    return where.jobId;
  }

  #remove(prefix: string, jobId: string): void {
    const previous = this.#state(jobId);
    const record = this.#records.get(jobId);
    if (prefix === this.keys.jobs) this.#records.delete(jobId);
    else this.#statuses.delete(jobId);
    this.#emit(jobId, previous, record);
  }

  #emit(jobId: string, previous: JobState | undefined, last?: JobRecord): void {
    const record = this.#records.get(jobId);
    const job = record === undefined ? undefined : this.#view(record);
    if (job?.state === previous) return;
    const change: JobChange = { job, jobId, previous, record: record ?? last };
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.onInvalid(err);
      }
    }
  }
}
