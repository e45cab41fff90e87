interface Waiter {
  readonly revision: number;
  readonly resolve: () => void;
}

/**
 * The newest store revision the watch has delivered, and waiting for one: after a commit that
 * failed without an answer, the scheduler writes a barrier and waits until the watch has
 * passed it, so that whatever the commit placed is known before it plans again.
 */
export class Watermark {
  #seen = 0;
  #waiters: Waiter[] = [];

  /** The newest revision delivered. */
  get seen(): number {
    return this.#seen;
  }

  /** Records that the watch delivered `revision`. */
  saw(revision: number): void {
    if (revision <= this.#seen) return;
    this.#seen = revision;
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.revision <= revision) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }

  /** Resolves once `revision` has been delivered, or when `signal` aborts. */
  reached(revision: number, signal: AbortSignal): Promise<void> {
    if (revision <= this.#seen || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ revision, resolve });
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }
}
