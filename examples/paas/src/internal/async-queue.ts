/** A queue one consumer drains as an async iterable; producers push, end or fail it. */
export class AsyncQueue<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #error: unknown;
  #failed = false;
  #ended = false;

  /** Adds an item. */
  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  /** Ends the consumer with `err` once it has taken what was pushed before. */
  fail(err: unknown): void {
    this.#failed = true;
    this.#error = err;
    this.#wake?.();
  }

  /** Ends the consumer once it has taken what was pushed before. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** Yields items as they come, until `signal` aborts or the queue ends or fails. */
  async *drain(signal: AbortSignal): AsyncGenerator<T> {
    const onAbort = (): void => this.#wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const item = this.#items.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (this.#failed) throw this.#error;
        if (this.#ended || signal.aborted) return;
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
