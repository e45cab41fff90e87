import type { Clock, Logger, TimerHandle } from '@flotilla/core';
import {
  compactedError,
  type EventQueue,
  StoreError,
  StoreErrorCodes,
  type WatchEvent,
} from '@flotilla/store';
import type { RawDuplex } from './client.js';
import type { EtcdRange, KeySpace } from './keyspace.js';
import { type DecodedWatchResponse, encodeWatchCreate } from './watch-codec.js';

type WatchStream = RawDuplex<Buffer, DecodedWatchResponse>;

/** What a {@link ResumingWatch} needs from its store. */
export interface ResumingWatchDeps {
  /** Opens a new etcd watch stream. */
  readonly open: () => Promise<WatchStream>;
  /** Reads etcd's current revision, linearizably. */
  readonly currentRevision: () => Promise<number>;
  readonly range: EtcdRange;
  /** Only deletes: etcd's NOPUT filter. */
  readonly deletesOnly: boolean;
  readonly keys: KeySpace;
  readonly queue: EventQueue<WatchEvent>;
  /** The watch's `skipRevision`, made safe by `revisionSkipper`. */
  readonly skip: ((revision: number) => boolean) | undefined;
  /** Deliver from this revision on; without it, from the revision after the stream starts. */
  readonly fromRevision: number | undefined;
  /** Stop holding calls back after this long if the stream cannot start. */
  readonly startTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;

/** Ends a stream without letting etcd3 take the cancel for a failed connection. */
function closeStream(stream: WatchStream): void {
  const duplex = stream as WatchStream & { writable?: boolean };
  try {
    // Half-close first: etcd3 only reports errors of still-writable streams as host failures.
    if (duplex.writable === true) duplex.end();
    stream.cancel();
  } catch {
    // Already closed.
  }
}

/**
 * One `Store.watch` on etcd: a watch stream of its own that delivers events in revision order
 * and, when the stream breaks (etcd restarted, connection lost), opens a new one from the
 * revision after the last one delivered, so that the consumer sees no gap and no duplicate.
 * Fails the queue with `FLOTILLA_STORE_COMPACTED` when that revision is compacted, or when
 * etcd lost its history (its revision went back, as after a restore or a wipe).
 */
export class ResumingWatch {
  /** Resolves once the watch has its start revision (or could not get it in time). */
  readonly started: Promise<void>;
  readonly #deps: ResumingWatchDeps;
  #resolveStarted!: () => void;
  #startTimer: TimerHandle | undefined;
  /** The next revision to deliver; undefined until the first stream reports its start. */
  #next: number | undefined;
  /** The highest revision this watch has seen etcd at: it cannot go back unless history was lost. */
  #confirmed = 0;
  #stream: WatchStream | undefined;
  #retryTimer: TimerHandle | undefined;
  #backoffMs = INITIAL_BACKOFF_MS;
  #stopped = false;

  constructor(deps: ResumingWatchDeps) {
    this.#deps = deps;
    this.#next = deps.fromRevision;
    this.started = new Promise((resolve) => (this.#resolveStarted = resolve));
    if (this.#next === undefined) {
      this.#startTimer = deps.clock.setTimeout(() => this.#markStarted(), deps.startTimeoutMs);
    } else {
      this.#markStarted();
    }
  }

  /** Opens the first stream. */
  start(): void {
    void this.#connect();
  }

  /** Stops for good: the consumer left or the store closed. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#markStarted();
    if (this.#retryTimer !== undefined) this.#deps.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream !== undefined) closeStream(stream);
  }

  /** Stops and fails the consumer's iteration with `error`. */
  fail(error: unknown): void {
    this.stop();
    this.#deps.queue.fail(error);
  }

  #markStarted(): void {
    if (this.#startTimer !== undefined) this.#deps.clock.clearTimeout(this.#startTimer);
    this.#startTimer = undefined;
    this.#resolveStarted();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    let stream: WatchStream;
    try {
      stream = await this.#deps.open();
    } catch (err) {
      this.#retry(err);
      return;
    }
    if (this.#stopped) {
      closeStream(stream);
      return;
    }
    this.#stream = stream;
    let broken = false;
    const onBroken = (err: unknown): void => {
      if (broken) return;
      broken = true;
      if (this.#stream === stream) this.#stream = undefined;
      closeStream(stream);
      this.#retry(err);
    };
    stream.on('data', (res) => {
      if (broken || this.#stopped) return;
      try {
        this.#onResponse(res, stream, () => (broken = true));
      } catch (err) {
        this.fail(err);
      }
    });
    stream.on('error', (err) => onBroken(err));
    stream.on('end', () => onBroken(new Error('etcd ended the watch stream')));
    stream.write(
      encodeWatchCreate(
        this.#deps.range.key,
        this.#deps.range.range_end,
        this.#next ?? 0,
        this.#deps.deletesOnly,
      ),
    );
  }

  #onResponse(res: DecodedWatchResponse, stream: WatchStream, drop: () => void): void {
    const headerRevision = res.revision;
    if (res.canceled) {
      this.#onCanceled(res);
      return;
    }
    if (res.created) {
      if (headerRevision < this.#confirmed) {
        // etcd is behind what we saw: a lagging member, or history lost. Ask the leader.
        drop();
        if (this.#stream === stream) this.#stream = undefined;
        closeStream(stream);
        void this.#checkHistory(this.#confirmed);
        return;
      }
      this.#confirmed = headerRevision;
      this.#next ??= headerRevision + 1;
      this.#backoffMs = INITIAL_BACKOFF_MS;
      this.#markStarted();
      return;
    }
    if (res.events.length === 0) {
      // A progress notification (events filtered out send nothing): etcd sends one only to a
      // watcher that has every change up to its header revision, so resume after it.
      if (this.#next !== undefined && headerRevision >= this.#next) {
        this.#next = headerRevision + 1;
        this.#confirmed = Math.max(this.#confirmed, headerRevision);
      }
      return;
    }
    let last = 0;
    const next = this.#next ?? 0;
    const skip = this.#deps.skip;
    for (const ev of res.events) {
      const revision = ev.kv.mod_revision;
      // After a reconnect etcd replays from `next`; never deliver a revision twice.
      if (revision < next) continue;
      // Skipped before its key and value are decoded: that is what the option saves.
      if (skip === undefined || !skip(revision)) this.#deps.queue.push(this.#deps.keys.event(ev));
      last = revision;
    }
    // etcd never splits one revision's events over two responses (no fragment option).
    if (last > 0) {
      this.#next = last + 1;
      this.#confirmed = Math.max(this.#confirmed, last);
    }
  }

  #onCanceled(res: DecodedWatchResponse): void {
    const compactRevision = res.compactRevision;
    if (compactRevision > 0) {
      this.fail(compactedError(this.#next, compactRevision));
      return;
    }
    this.fail(
      new StoreError(
        StoreErrorCodes.UNAVAILABLE,
        `etcd canceled the watch (${res.cancelReason || 'no reason given'}): watch again`,
      ),
    );
  }

  async #checkHistory(seen: number): Promise<void> {
    let current: number;
    try {
      current = await this.#deps.currentRevision();
    } catch (err) {
      this.#retry(err);
      return;
    }
    if (this.#stopped) return;
    if (current < seen) {
      this.#deps.logger.warn(
        { revision: current, seen },
        'etcd revision went back: its history was lost',
      );
      this.fail(
        compactedError(
          this.#next,
          current + 1,
          `etcd is at revision ${current}, before revision ${seen} that this watch saw: etcd lost its history (restored or wiped)`,
        ),
      );
      return;
    }
    // A member behind the others: try again shortly.
    this.#retry(new Error(`etcd member at revision ${current}, behind revision ${seen}`));
  }

  #retry(err: unknown): void {
    if (this.#stopped) return;
    // Calls held for this watch's start go ahead; the watch starts once etcd answers.
    this.#markStarted();
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    this.#deps.logger.debug(
      { err, retryInMs: delay, fromRevision: this.#next },
      'etcd watch stream broke; reconnecting',
    );
    this.#retryTimer = this.#deps.clock.setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delay);
  }
}
