import { type EventQueue, revisionSkipper, watchQueue } from './event-queue.js';
import { compareKeys } from './keys.js';
import type { StoreLimits, WatchEvent, WatchOptions } from './store.js';

/**
 * One `watch()` of a backend that sees its own commits (MemoryStore, SqliteStore): its queue,
 * and the one rule of what it is offered: changes under its prefix (and before its `before`;
 * only deletes with `deletesOnly`),
 * from its start revision on, but for the revisions its `skipRevision` leaves out.
 */
export class PrefixWatch {
  /** What the consumer iterates; fail it to end the watch with an error. */
  readonly queue: EventQueue<WatchEvent>;
  readonly #prefix: string;
  readonly #from: number;
  readonly #skip: ((revision: number) => boolean) | undefined;
  readonly #before: string | undefined;
  readonly #deletesOnly: boolean;

  /**
   * `from`: the first revision delivered. `onClose`: called once when the consumer stops.
   *
   * @throws StoreError `FLOTILLA_STORE_INVALID_ARGUMENT` when `skipRevision` is not a function.
   */
  constructor(
    prefix: string,
    from: number,
    limits: StoreLimits,
    options: WatchOptions,
    onClose: () => void,
  ) {
    this.#prefix = prefix;
    this.#from = from;
    this.#before = options.before;
    this.#deletesOnly = options.deletesOnly === true;
    this.queue = watchQueue(limits, options.signal, onClose);
    this.#skip = revisionSkipper(options.skipRevision, this.queue);
  }

  /** Whether a change at `revision` is left out (asked before building it, where that costs). */
  skips(revision: number): boolean {
    return this.#skip !== undefined && this.#skip(revision);
  }

  /** Queues `ev` if this watch wants it. */
  offer(ev: WatchEvent): void {
    if (
      ev.revision >= this.#from &&
      (!this.#deletesOnly || ev.type === 'delete') &&
      ev.kv.key.startsWith(this.#prefix) &&
      (this.#before === undefined || compareKeys(ev.kv.key, this.#before) < 0) &&
      !this.skips(ev.revision)
    )
      this.queue.push(ev);
  }
}
