/**
 * A single-consumer async queue that paces its producer: `push` waits while `max` items are
 * unread, so a consumer that reads slowly slows the producer instead of being dropped from or
 * making the queue grow. A consumer that stops iterating (`break`, a throw) releases the
 * producer: later pushes are discarded at once.
 */
export class PacedQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #max: number;
  #ended = false;
  #left = false;
  #paced = true;
  /** Set by a bounded {@link PacedQueue.unpace}: the most it holds, and what says a gap. */
  #keep: { readonly max: number; readonly gap: (dropped: number) => T } | undefined;
  /** Items dropped since the consumer last took one. */
  #dropped = 0;
  #wakeConsumer: (() => void) | undefined;
  #wakeProducer: (() => void) | undefined;

  constructor(max: number) {
    this.#max = max;
  }

  /** Adds an item once there is room; false if the queue ended or its consumer left. */
  async push(item: T): Promise<boolean> {
    while (this.#paced && this.#items.length >= this.#max && !this.#left && !this.#ended) {
      await new Promise<void>((resolve) => (this.#wakeProducer = resolve));
    }
    if (this.#left || this.#ended) return false;
    if (!this.#paced && this.#keep !== undefined && this.#items.length >= this.#keep.max) {
      this.#items.shift();
      this.#dropped++;
    }
    this.#items.push(item);
    this.#wake();
    return true;
  }

  /**
   * Stops pacing: `push` no longer waits for room, the queue holds what comes (for a producer
   * whose source is bounded now, such as an ended job's output). With `keep`, it holds at most
   * `keep.max` items, the newest: older ones are dropped, and the consumer gets `keep.gap(n)`
   * where `n` were (for output nobody may read any more, such as a stopped job's). A bound,
   * once set, stays.
   */
  unpace(keep?: { readonly max: number; readonly gap: (dropped: number) => T }): void {
    this.#paced = false;
    if (keep !== undefined) this.#keep ??= keep;
    // What is held already is bounded too (the queue may have been unpaced without one).
    const bound = this.#keep?.max;
    if (bound !== undefined && this.#items.length > bound) {
      this.#dropped += this.#items.length - bound;
      this.#items.splice(0, this.#items.length - bound);
    }
    this.#wake();
  }

  /** Ends the queue: the consumer gets what is left, then the end. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const c = this.#wakeConsumer;
    this.#wakeConsumer = undefined;
    c?.();
    const p = this.#wakeProducer;
    this.#wakeProducer = undefined;
    p?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.#dropped > 0 && this.#keep !== undefined) {
          const gap = this.#keep.gap(this.#dropped);
          this.#dropped = 0;
          yield gap;
          continue;
        }
        if (this.#items.length > 0) {
          const item = this.#items.shift() as T;
          this.#wake();
          yield item;
          continue;
        }
        if (this.#ended) return;
        await new Promise<void>((resolve) => (this.#wakeConsumer = resolve));
      }
    } finally {
      this.#left = true;
      this.#items.length = 0;
      this.#wake();
    }
  }
}
