import { type Logger, retry, silentLogger } from '@flotilla/core';
import type { ArtifactStore } from '@flotilla/controller';
import type { ArtifactCache } from '@flotilla/host';
import { listAndWatch, type KeyValue, type Store } from '@flotilla/store';

/** Options of {@link ArtifactMirror}. */
export interface ArtifactMirrorOptions {
  /** The cluster's store. */
  readonly store: Store;
  /** Where the release records are (default `cluster/releases/`). */
  readonly prefix?: string;
  /** Fetches and verifies a slug (with a failover fetch, from any server that has it). */
  readonly cache: ArtifactCache;
  /** This server's artifact store, which its API serves and its controller releases from. */
  readonly artifacts: ArtifactStore;
  /**
   * Called after each copy: prunes the slugs no app keeps any more (the controller's
   * `collectArtifacts`), which a server that never deploys would otherwise keep for good.
   */
  readonly collect?: () => Promise<unknown>;
  /** Attempts per slug before it is left until the next release names it (default 6). */
  readonly attempts?: number;
  /** Where copies and failures are logged (default: silence). */
  readonly logger?: Logger;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** A slug a release record names. */
interface Slug {
  readonly url: string;
  readonly sha256: string;
  readonly size: number;
}

/**
 * Keeps a copy of every slug the cluster's releases name in this server's artifact store, so
 * that any server can serve it to host agents and release it again (a config change, a
 * rollback) once the server that built it is gone. It watches the release records, and fetches
 * each slug it lacks, one at a time, retrying with backoff. A slug whose every copy was lost
 * before a second server had it is gone: push again.
 */
export class ArtifactMirror implements AsyncDisposable {
  readonly #o: ArtifactMirrorOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  readonly #queued = new Map<string, Slug>();
  #draining: Promise<void> | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: ArtifactMirrorOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Starts watching (in the background). */
  start(): void {
    this.#loop ??= this.#watch().catch((err: unknown) => {
      if (!this.#abort.signal.aborted)
        this.#logger.error({ err }, 'the release records can no longer be watched');
    });
  }

  async #watch(): Promise<void> {
    const signal = this.#abort.signal;
    const prefix = this.#o.prefix ?? 'cluster/releases/';
    for await (const item of listAndWatch(this.#o.store, prefix, {
      signal,
      onRetry: (err) => this.#logger.warn({ err }, 'watching release records'),
    })) {
      if (item.type === 'snapshot') for (const kv of item.kvs) this.#add(kv);
      else if (item.event.type === 'put') this.#add(item.event.kv);
    }
  }

  #add(kv: KeyValue): void {
    const slug = slugOf(kv.value);
    if (slug === undefined || this.#queued.has(slug.sha256)) return;
    this.#queued.set(slug.sha256, slug);
    this.#kick();
  }

  #kick(): void {
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.#queued.size > 0 && !this.#abort.signal.aborted) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    const signal = this.#abort.signal;
    const attempts = this.#o.attempts ?? 6;
    for (const slug of this.#queued.values()) {
      if (signal.aborted) return;
      let attempt = 1;
      try {
        // Every failure is worth another attempt, `attempts` in all, 1 s apart doubling.
        await retry(() => this.#copy(slug, signal), {
          signal,
          initialMs: 1000,
          maxMs: Number.MAX_SAFE_INTEGER,
          retryable: () => attempt < attempts,
          onRetry: (err) =>
            this.#logger.warn(
              { err, sha256: slug.sha256, attempt: attempt++ },
              'a slug could not be copied',
            ),
        });
      } catch (err) {
        if (signal.aborted) return;
        this.#logger.warn({ err, sha256: slug.sha256, attempt }, 'a slug could not be copied');
      }
      // Left in the map while it is copied, so a second record naming it waits for this one;
      // taken out after, so a later release naming it (once collected) copies it again.
      this.#queued.delete(slug.sha256);
    }
  }

  /** Copies one slug into the artifact store, unless it is there already. */
  async #copy(slug: Slug, signal: AbortSignal): Promise<void> {
    if ((await this.#o.artifacts.stat(slug.sha256)) !== undefined) return;
    // Pinned until copied: the cache may evict it as soon as it is unpinned.
    const pin = this.#o.cache.pin(slug.sha256);
    try {
      const path = await this.#o.cache.get(slug, { signal });
      await this.#o.artifacts.put(path, { sha256: slug.sha256, signal });
    } finally {
      pin.unpin();
    }
    this.#logger.info({ sha256: slug.sha256 }, 'slug copied');
    await this.#o
      .collect?.()
      .catch((err: unknown) => this.#logger.warn({ err }, 'collecting old slugs'));
  }

  /** Stops watching and copying. Idempotent. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    await this.#draining;
  }

  /** Same as {@link ArtifactMirror.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The slug of a release record's JSON, when it names one over http(s). */
function slugOf(value: string): Slug | undefined {
  try {
    const r = JSON.parse(value) as { artifact?: Partial<Slug> & { type?: string } };
    const a = r.artifact;
    if (
      a?.type === 'slug' &&
      typeof a.url === 'string' &&
      /^https?:/.test(a.url) &&
      typeof a.sha256 === 'string' &&
      SHA256.test(a.sha256) &&
      typeof a.size === 'number'
    )
      return { url: a.url, sha256: a.sha256, size: a.size };
  } catch {
    // not a release record: the scheduler and agents report those
  }
  return undefined;
}
