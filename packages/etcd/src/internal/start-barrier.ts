/**
 * Orders calls after the start of watches. A watch without `fromRevision` starts at the
 * revision etcd reports when its stream is created; a call made after `watch()` returned must
 * land after that revision, or its change would be missed. Calls wait for the watches that
 * are starting (one round trip; bounded by the request timeout) before they go to etcd.
 *
 * One barrier is shared by every store in the process that talks to the same etcd, so a write
 * through one store after a `watch()` on another is seen too.
 */
export class StartBarrier {
  readonly #starting = new Set<Promise<void>>();

  /** Holds calls until `started` resolves (it must never reject). */
  hold(started: Promise<void>): void {
    this.#starting.add(started);
    void started.then(() => this.#starting.delete(started));
  }

  /** Resolves once the watches starting now have started. */
  async wait(): Promise<void> {
    if (this.#starting.size === 0) return;
    await Promise.all([...this.#starting]);
  }
}

const barriers = new Map<string, StartBarrier>();

/** The barrier of the etcd cluster at these endpoints. */
export function barrierFor(endpoints: readonly string[]): StartBarrier {
  const id = [...endpoints].sort().join(',');
  let barrier = barriers.get(id);
  if (barrier === undefined) {
    barrier = new StartBarrier();
    barriers.set(id, barrier);
  }
  return barrier;
}
