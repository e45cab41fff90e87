// What an ArtifactCache knows of its directory: each verified artifact's size and when it was
// last used (kept on disk as the file's mtime, so the order survives a restart), which digests
// are pinned (by a job that runs or starts from them, or a get() in flight), and which are
// being removed. Eviction picks its victims here; the cache does the I/O.

/** One verified artifact in the cache directory. */
export interface IndexedArtifact {
  /** Bytes on disk. */
  readonly size: number;
  /** Last use, ms since the epoch (the cache's clock). */
  readonly usedAt: number;
}

/** The bounds eviction keeps the cache within. */
export interface EvictionBounds {
  /** The most bytes the artifacts may take together; unpinned ones go, least recently used first. */
  readonly maxBytes: number;
  /** An unpinned artifact unused for longer than this goes even within `maxBytes`. */
  readonly maxUnusedMs: number | undefined;
}

/** The in-memory index of an artifact cache's directory. */
export class ArtifactIndex {
  readonly #entries = new Map<string, IndexedArtifact>();
  readonly #pins = new Map<string, number>();
  readonly #removing = new Map<string, Promise<void>>();

  /** Records a use of `sha256` (present with `size` bytes) at `at`. */
  touch(sha256: string, size: number, at: number): void {
    this.#entries.set(sha256, { size, usedAt: at });
  }

  /** Adds an artifact found on disk, unless a newer record of it is already held. */
  found(sha256: string, size: number, usedAt: number): void {
    if (!this.#entries.has(sha256)) this.#entries.set(sha256, { size, usedAt });
  }

  /** Forgets an artifact (removed from disk). */
  forget(sha256: string): IndexedArtifact | undefined {
    const entry = this.#entries.get(sha256);
    this.#entries.delete(sha256);
    return entry;
  }

  /** Pins `sha256` (present or not) until the returned function is called; pins count up. */
  pin(sha256: string): () => boolean {
    this.#pins.set(sha256, (this.#pins.get(sha256) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return false;
      done = true;
      const n = (this.#pins.get(sha256) ?? 1) - 1;
      if (n > 0) this.#pins.set(sha256, n);
      else this.#pins.delete(sha256);
      return n === 0;
    };
  }

  /** Whether anything pins `sha256`. */
  pinned(sha256: string): boolean {
    return this.#pins.has(sha256);
  }

  /** The removal of `sha256` in progress, if one is. */
  removal(sha256: string): Promise<void> | undefined {
    return this.#removing.get(sha256);
  }

  /** Marks `sha256` as being removed until `done` settles. */
  removing(sha256: string, done: Promise<void>): void {
    this.#removing.set(sha256, done);
    void done.finally(() => {
      if (this.#removing.get(sha256) === done) this.#removing.delete(sha256);
    });
  }

  /** Bytes held, artifacts held, and how many of those are pinned. */
  usage(): { bytes: number; artifacts: number; pinned: number } {
    let bytes = 0;
    let pinned = 0;
    for (const [sha256, e] of this.#entries) {
      bytes += e.size;
      if (this.#pins.has(sha256)) pinned++;
    }
    return { bytes, artifacts: this.#entries.size, pinned };
  }

  /**
   * The next artifact to evict, or undefined when the cache is within `bounds`: the least
   * recently used unpinned one, if the cache is over `maxBytes` or it is unused for longer than
   * `maxUnusedMs`. Never a pinned one, nor one in `skip` (its removal failed in this pass).
   */
  victim(bounds: EvictionBounds, now: number, skip: ReadonlySet<string>): string | undefined {
    let bytes = 0;
    let oldest: [string, IndexedArtifact] | undefined;
    for (const entry of this.#entries) {
      bytes += entry[1].size;
      if (this.#pins.has(entry[0]) || skip.has(entry[0])) continue;
      if (oldest === undefined || entry[1].usedAt < oldest[1].usedAt) oldest = entry;
    }
    if (oldest === undefined) return undefined;
    const stale = bounds.maxUnusedMs !== undefined && now - oldest[1].usedAt > bounds.maxUnusedMs;
    return bytes > bounds.maxBytes || stale ? oldest[0] : undefined;
  }
}
