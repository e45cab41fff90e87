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
    this.#items.push(item);
    this.#wake();
    return true;
  }

  /**
   * Stops pacing: `push` no longer waits for room, the queue holds what comes (for a producer
   * whose source is bounded now, such as a stopped job's output).
   */
  unpace(): void {
    this.#paced = false;
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
