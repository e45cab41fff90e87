import type { ClusterKeys } from '@flotilla/cluster';
import { type Clock, isFlotillaError, sleep } from '@flotilla/core';
import {
  listAndWatch,
  type KeyValue,
  type ListWatchItem,
  type Store,
  type WatchEvent,
} from '@flotilla/store';
import { Watermark } from './watermark.js';

const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

/** What the watch feeds the scheduler. */
export interface ClusterWatchHooks {
  /**
   * A full listing to apply. `first`: the scheduler's first; otherwise it replaces the view
   * (keys absent from it were deleted), `why` saying what made it: a change of watch mode, or
   * the watch falling behind the store's compaction.
   */
  snapshot(
    kvs: readonly KeyValue[],
    revision: number,
    first: boolean,
    why: 'mode' | 'compacted',
  ): void;
  /** One change, in revision order. */
  change(event: WatchEvent): void;
  /** After each snapshot or change is applied. */
  applied(): void;
  /** The view applied from now on leaves out job records (`true`), or has them all. */
  view(ownJobs: boolean): void;
  /** A job record was deleted (watched apart while job records are left out). */
  jobDeleted(event: WatchEvent): void;
  /** The watch failed for good (a non-retryable error). */
  failed(err: unknown): void;
}

/** One `listAndWatch` of the cluster state. */
interface Stream {
  /** Its number, in the order streams were opened. */
  readonly seq: number;
  /** Whether it leaves out job records (watches the keys before `jobs/` only). */
  readonly ownJobs: boolean;
  readonly abort: AbortController;
  /** Aborts when the stream stops or the scheduler closes. */
  readonly signal: AbortSignal;
  /** The revision of its latest listing (its first snapshot, or one after a compaction). */
  listedAt: number;
  /** The newest revision it delivered. */
  readonly watermark: Watermark;
  /** Whether its first snapshot is applied: the view is then this stream's. */
  ready: boolean;
  /** Whether it stopped or failed (its snapshot, if not applied yet, will not come). */
  ended: boolean;
  /** Settles when it stopped (a mode change, close) or failed. */
  done: Promise<void>;
}

/**
 * The scheduler's watch of the cluster state, in one of two modes:
 *
 * - everything under the prefix;
 * - everything but the job records (`ownJobs`): the keys before `jobs/`. While a scheduler is
 *   the only one, it writes every job record itself and applies each write as it commits, so
 *   the store need not send them back: after a bulk placement on etcd, a million records
 *   echoed, which cost etcd a sixth of its CPU per job and the scheduler a third of its own.
 *
 * A change of mode lists the whole prefix again (a snapshot that replaces the view) and
 * watches in the new mode from that list's revision + 1: nothing is missed or seen twice. A
 * change to watch everything is needed before a second scheduler's job records can be seen;
 * {@link ownJobsView} tells whether the view applied so far lacks them.
 */
export class ClusterWatch {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #onRetry: (err: unknown) => void;
  readonly #skipRevision: (revision: number) => boolean;
  readonly #hooks: ClusterWatchHooks;
  #stream: Stream | undefined;
  #viewOwnJobs = false;
  #wantOwnJobs = false;
  /** A new listing is wanted in the current mode (the job deletes fell behind a compaction). */
  #relist = false;
  /** Streams opened so far: each gets the next number. */
  #streams = 0;
  /** The view is stale until a stream of this number or later has listed (0: not stale). */
  #staleUntil = 0;
  #applyingSnapshot = false;
  #stopped = false;
  #switching: Promise<void> | undefined;
  #viewWaiters: (() => void)[] = [];

  constructor(options: {
    store: Store;
    keys: ClusterKeys;
    clock: Clock;
    /** Ends every stream: the scheduler closing. */
    signal: AbortSignal;
    onRetry: (err: unknown) => void;
    skipRevision: (revision: number) => boolean;
    hooks: ClusterWatchHooks;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#onRetry = options.onRetry;
    this.#skipRevision = options.skipRevision;
    this.#hooks = options.hooks;
  }

  /** Whether the view applied so far leaves out job records written by others. */
  get ownJobsView(): boolean {
    return this.#viewOwnJobs;
  }

  /**
   * Whether the view leaves out job records and another scheduler may have written some since
   * it was listed: it must be listed again before this scheduler places anything.
   */
  get stale(): boolean {
    return this.#viewOwnJobs && this.#staleUntil > 0;
  }

  /**
   * Another scheduler is in the epoch (as the watch just delivered it): from now on it may
   * write job records, which a view that leaves them out lacks, even if it leaves again
   * before this scheduler plans. Lists again (in whichever mode is wanted then).
   */
  othersMayWrite(): void {
    // A listing being applied has every job record up to its revision, whoever wrote it.
    if (!this.#viewOwnJobs || this.#staleUntil > 0 || this.#applyingSnapshot) return;
    this.#staleUntil = this.#streams + 1;
    // Watch them all from the new listing on: the other scheduler is in the epoch.
    this.#wantOwnJobs = false;
    this.#relist = true;
    this.#startSwitch();
  }

  /**
   * Stops watching (a start that failed or was aborted): the current stream ends, and no
   * change of mode opens another.
   */
  stop(): void {
    this.#stopped = true;
    this.#stream?.abort.abort();
    this.#wakeViewWaiters();
  }

  #snapshot(
    kvs: readonly KeyValue[],
    revision: number,
    first: boolean,
    why: 'mode' | 'compacted',
  ): void {
    this.#applyingSnapshot = true;
    try {
      this.#hooks.snapshot(kvs, revision, first, why);
    } finally {
      this.#applyingSnapshot = false;
    }
  }

  /**
   * Lists the cluster state and applies it (the first snapshot), then goes on watching in the
   * background. Resolves false when the signal aborted first.
   */
  async start(ownJobs: boolean): Promise<boolean> {
    this.#wantOwnJobs = ownJobs;
    const { stream, items } = this.#open(ownJobs);
    const first = await items.next();
    if (first.done === true || first.value.type !== 'snapshot' || this.#signal.aborted)
      return false;
    this.#snapshot(first.value.kvs, first.value.revision, true, 'mode');
    this.#ready(stream, first.value.revision);
    stream.done = this.#consume(stream, items);
    return true;
  }

  /**
   * Asks for a mode: job records left out (`true`) or watched. A change lists again, in the
   * background; {@link ownJobsView} turns when its snapshot is applied.
   */
  watchOwnJobs(ownJobs: boolean): void {
    this.#wantOwnJobs = ownJobs;
    this.#startSwitch();
  }

  #startSwitch(): void {
    if (this.#switching !== undefined || this.#stream === undefined || this.#stopped) return;
    if (this.#stream.ownJobs === this.#wantOwnJobs && !this.#relist) return;
    this.#switching = this.#switch().finally(() => {
      this.#switching = undefined;
    });
  }

  /**
   * Resolves once the view has every record and has passed `revision` (after a commit failed
   * without an answer: whatever it placed is then known); at once when the signal aborts.
   */
  async caughtUp(revision: number): Promise<void> {
    this.watchOwnJobs(false);
    while (!this.#signal.aborted && !this.#stopped) {
      const stream = this.#stream;
      if (stream === undefined || !stream.ready || stream.ownJobs) {
        await this.#nextView();
        continue;
      }
      await stream.watermark.reached(revision, stream.signal);
      if (stream === this.#stream && stream.watermark.seen >= revision) return;
    }
  }

  /** Resolves when a stream's first snapshot is applied, or one ends without it. */
  #nextView(): Promise<void> {
    return new Promise<void>((resolve) => this.#viewWaiters.push(resolve));
  }

  #wakeViewWaiters(): void {
    for (const w of this.#viewWaiters.splice(0)) w();
  }

  /** Waits for the stream in flight to stop (after the signal aborted). */
  async closed(): Promise<void> {
    await this.#switching;
    await this.#stream?.done;
    this.#wakeViewWaiters();
  }

  async #switch(): Promise<void> {
    for (
      let s = this.#stream;
      s !== undefined && (s.ownJobs !== this.#wantOwnJobs || this.#relist);
      s = this.#stream
    ) {
      this.#relist = false;
      s.abort.abort();
      await s.done;
      if (this.#signal.aborted || this.#stopped) return;
      const { stream, items } = this.#open(this.#wantOwnJobs);
      stream.done = this.#consume(stream, items);
      // One change of mode at a time: its snapshot, then the next if the wish changed.
      // Until it is applied, or the stream ends without it (stopped, or failed for good).
      while (!stream.ready && !stream.ended) await this.#nextView();
      if (!stream.ready) return;
    }
  }

  #open(ownJobs: boolean): { stream: Stream; items: AsyncIterator<ListWatchItem> } {
    const abort = new AbortController();
    const signal = AbortSignal.any([this.#signal, abort.signal]);
    const stream: Stream = {
      seq: ++this.#streams,
      ownJobs,
      abort,
      signal,
      listedAt: 0,
      watermark: new Watermark(),
      ready: false,
      ended: false,
      done: Promise.resolve(),
    };
    this.#stream = stream;
    const items = listAndWatch(this.#store, this.#keys.prefix, {
      signal,
      clock: this.#clock,
      onRetry: this.#onRetry,
      skipRevision: this.#skipRevision,
      ...(ownJobs ? { watchBefore: this.#keys.jobs } : {}),
    })[Symbol.asyncIterator]();
    return { stream, items };
  }

  #ready(stream: Stream, revision: number): void {
    stream.ready = true;
    stream.listedAt = revision;
    this.#viewOwnJobs = stream.ownJobs;
    if (this.#staleUntil > 0 && stream.seq >= this.#staleUntil) this.#staleUntil = 0;
    this.#hooks.view(stream.ownJobs);
    stream.watermark.saw(revision);
    this.#wakeViewWaiters();
    if (stream.ownJobs) void this.#jobDeletes(stream, revision + 1);
  }

  /**
   * While `stream` (which leaves job records out) lasts: the deletes of job records from
   * revision `from` on. The scheduler's own come back (it applied them already); one made by
   * hand is how it learns that a job it placed is gone. etcd drops the puts of this watch
   * before queueing them (`deletesOnly`), so the echo of a bulk placement costs it little.
   */
  async #jobDeletes(stream: Stream, from: number): Promise<void> {
    const signal = stream.signal;
    let next = from;
    let delay = INITIAL_BACKOFF_MS;
    while (!signal.aborted) {
      try {
        const deletes = this.#store.watch(this.#keys.jobs, {
          fromRevision: next,
          deletesOnly: true,
          signal,
        });
        for await (const event of deletes) {
          // Resumed from its revision (not the next): a transaction's other deletes come again
          // rather than not at all. Forgetting a job twice is nothing.
          next = event.revision;
          delay = INITIAL_BACKOFF_MS;
          this.#hooks.jobDeleted(event);
        }
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (isFlotillaError(err, 'FLOTILLA_STORE_COMPACTED')) {
          // Behind the store's history. A listing made since (the main watch's, after the same
          // compaction) shows which jobs were gone by then: resume after it.
          if (stream.listedAt >= next) {
            next = stream.listedAt + 1;
            continue;
          }
          // Else only a new listing tells which jobs are gone.
          this.#relist = true;
          this.#startSwitch();
          return;
        }
        if (isFlotillaError(err) && err.retryable) {
          this.#onRetry(err);
          await sleep(this.#clock, delay, signal);
          delay = Math.min(delay * 2, MAX_BACKOFF_MS);
          continue;
        }
        this.#hooks.failed(err);
        return;
      }
    }
  }

  async #consume(stream: Stream, items: AsyncIterator<ListWatchItem>): Promise<void> {
    try {
      for (let r = await items.next(); r.done !== true; r = await items.next()) {
        const item = r.value;
        if (item.type === 'snapshot') {
          // A new stream's first (reset false), or a list after a compaction (reset true).
          this.#snapshot(item.kvs, item.revision, false, item.reset ? 'compacted' : 'mode');
          if (!stream.ready) this.#ready(stream, item.revision);
          else {
            stream.listedAt = item.revision;
            stream.watermark.saw(item.revision);
          }
        } else {
          this.#hooks.change(item.event);
          stream.watermark.saw(item.event.revision);
        }
        this.#hooks.applied();
      }
    } catch (err) {
      if (stream.signal.aborted) return;
      this.#hooks.failed(err);
    } finally {
      stream.ended = true;
      // Whoever waits for this stream's snapshot learns it will not come.
      if (!stream.ready) this.#wakeViewWaiters();
    }
  }
}
