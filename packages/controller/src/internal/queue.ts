/**
 * A single-consumer async queue: `push` never blocks; the consumer iterates. Bounded: past
 * `max` unread items, `onOverflow` is called (it ends the queue, with an error) and the item is
 * not taken. (A producer that must wait for its consumer uses `PacedQueue`.)
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(
    readonly max: number,
    readonly onOverflow: (queue: AsyncQueue<T>) => void,
  ) {}

  push(item: T): void {
    if (this.#ended) return;
    if (this.#items.length >= this.max) {
      this.onOverflow(this);
      return;
    }
    this.#items.push(item);
    this.#wake?.();
  }

  /** Ends the queue: the consumer gets what is left, then the end (or `error`, thrown). */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#wake?.();
  }

  get ended(): boolean {
    return this.#ended;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}
