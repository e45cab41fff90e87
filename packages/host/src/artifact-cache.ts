import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import { HostError, HostErrorCodes } from './errors.js';
import {
  ArtifactIndex,
  type EvictionBounds,
  type IndexedArtifact,
} from './internal/artifact-index.js';
import { takePidLock } from './internal/pid-lock.js';
import { describe, intOption } from './internal/validate.js';

/** A slug artifact as a release record names it. */
export interface SlugArtifact {
  /** `file://`, `http://` or `https://`. */
  readonly url: string;
  /** Hex SHA-256 of the file. */
  readonly sha256: string;
  /** Size in bytes. */
  readonly size: number;
}

/** Options of {@link ArtifactCache}. */
export interface ArtifactCacheOptions {
  /** Where verified artifacts are kept, one file per digest. Created if missing. */
  readonly dir: string;
  /** Sent as `Authorization: Bearer <token>` to `http(s)` URLs (the controller's artifact endpoint). */
  readonly token?: string;
  /** The fetch to use (default: the global one). */
  readonly fetch?: typeof fetch;
  /**
   * How long a download may go without receiving a byte (or, before the first, the response
   * headers) before it fails with `FLOTILLA_HOST_ARTIFACT_STALLED` (default 30,000 ms, from 1 ms).
   * Also the age past which a leftover `.part` file of a download that died with its process is
   * deleted (a younger one may still be written).
   */
  readonly idleTimeoutMs?: number;
  /**
   * The URLs artifacts may come from, as prefixes ending in `/`, e.g. the controller's
   * `['file:///var/lib/flotilla/artifacts/', 'https://controller:5000/artifacts/']`. An artifact
   * URL under none of them (compared once `.`/`..` segments are resolved) is refused with
   * `FLOTILLA_HOST_ARTIFACT_INVALID` before anything is read or sent, so a release record cannot
   * make the agent read another local file or send its token elsewhere. Default: any
   * `file://`, `http://` or `https://` URL.
   */
  readonly urlPrefixes?: readonly string[];
  /**
   * The most bytes the cached artifacts may take together (default
   * {@link DEFAULT_ARTIFACT_CACHE_MAX_BYTES}, 10 GiB; from 0). When the cache goes over it, the
   * least recently used artifacts are deleted until it fits, never one that is pinned (see
   * {@link ArtifactCache.pin}: a job that runs or starts from it) or being fetched. Pinned
   * artifacts alone may exceed it: they stay, and the cache shrinks as they are unpinned.
   */
  readonly maxBytes?: number;
  /**
   * Also deletes an unpinned artifact unused for longer than this, ms (from 1; default: no
   * age bound). Checked whenever the cache evicts: after a fetch, an unpin, and
   * {@link ArtifactCache.prune}.
   */
  readonly maxUnusedMs?: number;
  /** The clock of "last used" (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
}

/** The default {@link ArtifactCacheOptions.maxBytes}: 10 GiB. */
export const DEFAULT_ARTIFACT_CACHE_MAX_BYTES = 10 * 1024 ** 3;

/**
 * A hold on an artifact ({@link ArtifactCache.pin}): while any pin on its digest is held, the
 * cache does not evict it. Unpinning is idempotent; `using pin = cache.pin(sha)` unpins at the
 * end of the scope.
 */
export interface ArtifactPin extends Disposable {
  /** The digest pinned. */
  readonly sha256: string;
  /** Releases this pin (idempotent). The artifact becomes evictable once no pin holds it. */
  unpin(): void;
}

/** What {@link ArtifactCache.usage} reports. */
export interface ArtifactCacheUsage {
  /** Bytes of the verified artifacts in the cache. */
  readonly bytes: number;
  /** How many there are. */
  readonly artifacts: number;
  /** How many of them are pinned. */
  readonly pinned: number;
  /** {@link ArtifactCacheOptions.maxBytes}. */
  readonly maxBytes: number;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** A verified artifact's file name. */
const ENTRY = /^([0-9a-f]{64})\.slug$/;

/** One download shared by every caller that asked for its digest while it runs. */
interface Download {
  readonly result: Promise<string>;
  /** Cancels the download; used once every caller waiting on it has aborted. */
  readonly controller: AbortController;
  /** Callers still waiting; a caller without a signal never leaves. */
  waiters: number;
}

/**
 * Fetches slug artifacts once per host and keeps them by digest. A download streams into a
 * temporary file while its SHA-256 is computed; only a file of the declared size and digest is
 * renamed into the cache, so a corrupt, truncated or oversized download is refused with a coded
 * error and never used. Concurrent requests for one digest share one fetch; a caller's abort
 * leaves the others' fetch running, and the fetch is cancelled once every caller has aborted.
 * Redirects are refused (the token is never sent anywhere but the URL the release names).
 *
 * The cache keeps within a byte budget ({@link ArtifactCacheOptions.maxBytes}): least recently
 * used artifacts are deleted first, never a pinned one ({@link ArtifactCache.pin}) nor one being
 * fetched. The order survives a restart: a use sets the file's mtime, and a new cache on the
 * directory rebuilds its index from the files (deleting the `.part` of downloads that died with
 * their process). Pins are held in this process: one agent per `dir`; a cache of another live
 * process on the same `dir` is refused (`FLOTILLA_HOST_ARTIFACT_CACHE_IN_USE`, a lock file
 * `.lock` naming the process, taken over once that process is gone).
 *
 * @example
 * ```ts
 * const cache = new ArtifactCache({ dir: '/var/lib/flotilla/artifacts', token, maxBytes: 20 * 2 ** 30 });
 * const pin = cache.pin(release.artifact.sha256); // kept while the job runs
 * const path = await cache.get(release.artifact); // verified, ready for extractSlug
 * // ... when the job has ended:
 * pin.unpin();
 * ```
 */
export class ArtifactCache {
  readonly dir: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #logger: Logger;
  readonly #idleTimeoutMs: number;
  readonly #urlPrefixes: readonly string[] | undefined;
  readonly #inflight = new Map<string, Download>();
  readonly #bounds: EvictionBounds;
  readonly #clock: Clock;
  readonly #index = new ArtifactIndex();
  /** The index read from the directory (and stale `.part` files deleted), once. */
  #loaded: Promise<void> | undefined;
  /** The eviction passes, one after another. */
  #passes: Promise<unknown> = Promise.resolve();
  /** A pass asked for and not started yet: later asks share it. */
  #queuedPass: Promise<string[]> | undefined;
  /**
   * `.part` files found when the dir was read that were too young to be called leftovers then
   * (a crash just before this start): looked at again before each download.
   */
  readonly #youngParts = new Set<string>();

  constructor(options: ArtifactCacheOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '' || options.dir.includes('\0'))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        'ArtifactCache needs a dir: a directory path (without NUL bytes)',
        { path: 'dir' },
      );
    if (options.token !== undefined && !/^[\x21-\x7e]+$/.test(options.token))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        'ArtifactCache token must be printable ASCII without spaces (it is sent as a header)',
        { path: 'token' },
      );
    this.#idleTimeoutMs = intOption(options.idleTimeoutMs, 'idleTimeoutMs', 30_000, 1, 2 ** 31 - 1);
    this.#urlPrefixes = checkPrefixes(options.urlPrefixes);
    this.#bounds = {
      maxBytes: intOption(options.maxBytes, 'maxBytes', DEFAULT_ARTIFACT_CACHE_MAX_BYTES, 0),
      maxUnusedMs:
        options.maxUnusedMs === undefined
          ? undefined
          : intOption(options.maxUnusedMs, 'maxUnusedMs', 0, 1),
    };
    this.#clock = options.clock ?? systemClock;
    this.dir = resolve(options.dir);
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * The path of the artifact's verified file, `<dir>/<sha256>.slug`, fetching it first if this
   * host has not yet.
   *
   * @throws {@link HostError} `FLOTILLA_HOST_ARTIFACT_INVALID` for a bad descriptor,
   * `FLOTILLA_HOST_ARTIFACT_FETCH` when it cannot be fetched (retryable for network errors, 408,
   * 429 and 5xx), `FLOTILLA_HOST_ARTIFACT_STALLED` when nothing came for `idleTimeoutMs`,
   * `FLOTILLA_HOST_ARTIFACT_CORRUPT` when what came is not the artifact,
   * `FLOTILLA_HOST_ARTIFACT_CACHE_IN_USE` when another live process's cache uses `dir`; the signal's reason
   * when `signal` aborts. A failed download leaves no file behind.
   *
   * The artifact counts as used now (least recently used goes first). While the call runs it
   * is not evicted; once it has resolved, only a {@link ArtifactCache.pin} taken before keeps it:
   * pin first, then get, and unpin when done with the file.
   */
  async get(artifact: SlugArtifact, options: { signal?: AbortSignal } = {}): Promise<string> {
    const url = check(artifact);
    if (this.#urlPrefixes !== undefined && !this.#urlPrefixes.some((p) => url.href.startsWith(p)))
      throw new HostError(
        HostErrorCodes.ARTIFACT_INVALID,
        `artifact url ${url.href} is under none of the cache's urlPrefixes (${this.#urlPrefixes.join(', ')}): refused`,
        { path: 'url' },
      );
    const { signal } = options;
    signal?.throwIfAborted();
    // Pinned while this call runs: an eviction pass can no longer pick it, and one that picked
    // it before is waited for (then it is fetched anew).
    const unpin = this.#index.pin(artifact.sha256);
    try {
      await this.#load();
      await this.#index.removal(artifact.sha256);
      return await this.#get(artifact, url, signal);
    } finally {
      if (unpin()) this.#evictSoon();
    }
  }

  async #get(artifact: SlugArtifact, url: URL, signal: AbortSignal | undefined): Promise<string> {
    const path = join(this.dir, `${artifact.sha256}.slug`);
    const cached = await stat(path).catch(() => undefined);
    if (cached?.isFile() === true && cached.size === artifact.size) {
      await this.#used(artifact.sha256, path, cached.size);
      return path;
    }
    signal?.throwIfAborted();
    // Keyed by size too: a descriptor with the right digest and a wrong size must not be
    // answered by another caller's download.
    const key = `${artifact.sha256}/${artifact.size}`;
    let download = this.#inflight.get(key);
    if (download === undefined) {
      const controller = new AbortController();
      const result = this.#download(artifact, url, path, controller.signal).finally(() => {
        if (this.#inflight.get(key) === started) this.#inflight.delete(key);
      });
      // Every caller may have left (aborted): the outcome still must not be an unhandled rejection.
      result.catch(() => undefined);
      const started: Download = { result, controller, waiters: 0 };
      download = started;
      this.#inflight.set(key, download);
    }
    return this.#wait(key, download, signal);
  }

  #wait(key: string, download: Download, signal: AbortSignal | undefined): Promise<string> {
    download.waiters++;
    if (signal === undefined) return download.result;
    return new Promise<string>((resolve, reject) => {
      /** Set when this caller left: its answer is its signal's reason, whatever the download does. */
      let left = false;
      const onAbort = (): void => {
        left = true;
        if (--download.waiters > 0) {
          reject(signal.reason);
          return;
        }
        // Nobody waits any more: cancel, and let the next caller start afresh. The last caller
        // is answered once the download has cleaned up: nothing of it is left when get() rejects.
        if (this.#inflight.get(key) === download) this.#inflight.delete(key);
        download.controller.abort(signal.reason);
        void download.result.catch(() => undefined).finally(() => reject(signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      download.result
        .then(
          (path) => left || resolve(path),
          (err: unknown) => left || reject(err),
        )
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  async #download(
    artifact: SlugArtifact,
    url: URL,
    path: string,
    cancel: AbortSignal,
  ): Promise<string> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (cause) {
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `the artifact cache dir ${this.dir} cannot be created`,
        { cause },
      );
    }
    await this.#sweepLeftovers();
    const temp = join(this.dir, `.${artifact.sha256}.${randomBytes(4).toString('hex')}.part`);
    const started = performance.now();
    const hash = createHash('sha256');
    let bytes = 0;
    // Aborted by the callers (all gone) or by the idle timer: no byte for idleTimeoutMs.
    const controller = new AbortController();
    const signal = controller.signal;
    const onCancel = (): void => controller.abort(cancel.reason);
    if (cancel.aborted) onCancel();
    else cancel.addEventListener('abort', onCancel, { once: true });
    const idleMs = this.#idleTimeoutMs;
    const stalled = (): HostError =>
      new HostError(
        HostErrorCodes.ARTIFACT_STALLED,
        `artifact ${artifact.url} stalled: nothing came for ${idleMs} ms after ${bytes} of ${artifact.size} bytes (idleTimeoutMs)`,
        { retryable: true },
      );
    let idle: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(stalled()), idleMs);
    };
    touch();
    let sink: ReturnType<typeof createWriteStream> | undefined;
    try {
      const source = await this.#open(artifact, url, signal);
      const remote = url.protocol !== 'file:';
      // Counts and hashes what the source gives, refusing a chunk that would go past the
      // declared size before it is written; a source that breaks off is reported as such (the
      // writer's own failures are not, see below).
      const verified = async function* (): AsyncGenerator<Buffer> {
        try {
          for await (const chunk of source as AsyncIterable<Buffer>) {
            touch();
            bytes += chunk.length;
            if (bytes > artifact.size)
              throw new HostError(
                HostErrorCodes.ARTIFACT_CORRUPT,
                `artifact ${artifact.url} is larger than the ${artifact.size} bytes its release declares: refused`,
              );
            hash.update(chunk);
            yield chunk;
          }
        } catch (err) {
          if (err instanceof HostError || signal.aborted) throw err;
          throw remote
            ? new HostError(
                HostErrorCodes.ARTIFACT_CORRUPT,
                `artifact ${artifact.url} is truncated: the connection broke off after ${bytes} of ${artifact.size} bytes`,
                { cause: err, retryable: true },
              )
            : new HostError(
                HostErrorCodes.ARTIFACT_FETCH,
                `artifact ${artifact.url} cannot be read`,
                {
                  cause: err,
                },
              );
        } finally {
          source.destroy();
        }
      };
      try {
        sink = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
        await pipeline(verified, sink, { signal });
      } catch (err) {
        if (err instanceof HostError || signal.aborted) throw err;
        throw new HostError(
          HostErrorCodes.ARTIFACT_FETCH,
          `artifact ${artifact.url} cannot be written to the cache dir ${this.dir}`,
          { cause: err },
        );
      }
      if (bytes !== artifact.size) {
        throw new HostError(
          HostErrorCodes.ARTIFACT_CORRUPT,
          `artifact ${artifact.url} is truncated: ${bytes} of ${artifact.size} bytes`,
          { retryable: remote },
        );
      }
      const digest = hash.digest('hex');
      if (digest !== artifact.sha256) {
        throw new HostError(
          HostErrorCodes.ARTIFACT_CORRUPT,
          `artifact ${artifact.url} has sha256 ${digest}, not ${artifact.sha256}: it was corrupted or tampered with`,
        );
      }
      await rename(temp, path);
      await this.#used(artifact.sha256, path, bytes);
      this.#evictSoon();
      this.#logger.info(
        { url: artifact.url, bytes, ms: Math.round(performance.now() - started) },
        'artifact fetched',
      );
      return path;
    } catch (err) {
      // The file may still be opening: removed before that, it would come back empty.
      if (sink !== undefined && !sink.closed) await once(sink, 'close').catch(() => undefined);
      await rm(temp, { force: true });
      if (signal.aborted && !cancel.aborted) throw signal.reason; // stalled
      throw err;
    } finally {
      clearTimeout(idle);
      cancel.removeEventListener('abort', onCancel);
    }
  }

  /**
   * Pins an artifact: while any pin on `sha256` is held, the cache does not evict it (a job that
   * runs or starts from it). Pin before {@link ArtifactCache.get}, so nothing can evict it
   * between the fetch and its use; a digest may be pinned before it is fetched, or when it is
   * not in the cache at all. Pins count: each must be unpinned.
   *
   * @throws {@link HostError} `FLOTILLA_HOST_ARTIFACT_INVALID` when `sha256` is not 64 lowercase
   * hex digits.
   */
  pin(sha256: string): ArtifactPin {
    checkSha256(sha256);
    const unpin = this.#index.pin(sha256);
    const release = (): void => {
      if (unpin()) this.#evictSoon();
    };
    return { sha256, unpin: release, [Symbol.dispose]: release };
  }

  /**
   * Deletes the cached copy of an artifact found damaged since it was fetched (a slug whose
   * extraction failed its sha256 check: the disk rotted, or someone wrote to it), pinned or not:
   * the next {@link ArtifactCache.get} fetches and verifies it again. Pins stay, and hold the new
   * copy. A process still reading the old file reads it to the end (it is unlinked, not
   * truncated). The file is read first: a copy that matches its digest (fetched again since
   * another caller found the damage) is left alone. Resolves with whether a copy was deleted.
   *
   * @throws {@link HostError} `FLOTILLA_HOST_ARTIFACT_INVALID` when `sha256` is not 64 lowercase
   * hex digits; `FLOTILLA_HOST_ARTIFACT_CACHE_IN_USE` or `FLOTILLA_HOST_ARTIFACT_FETCH` as
   * {@link ArtifactCache.prune} does; what the file system throws when it cannot be deleted.
   */
  async discard(sha256: string): Promise<boolean> {
    checkSha256(sha256);
    await this.#load();
    await this.#index.removal(sha256);
    // Being fetched again already (another caller found the damage first): the new copy
    // replaces the file when complete, and deleting it now could take it from that caller.
    for (const key of this.#inflight.keys()) if (key.startsWith(`${sha256}/`)) return false;
    const path = join(this.dir, `${sha256}.slug`);
    // Read again (the damage is rare, a slug a few MB): another caller that found the same
    // damage may have had the copy fetched again since, and that one stays.
    const digest = await fileDigest(path);
    if (digest === sha256) return false;
    const existed = digest !== undefined;
    // As an eviction removes it: a get() from now on waits for the removal.
    await this.#remove(sha256);
    this.#logger.warn(
      { sha256, path },
      'damaged artifact deleted from the cache: it is fetched again',
    );
    return existed;
  }

  /**
   * Evicts now what is over the cache's bounds ({@link ArtifactCacheOptions.maxBytes},
   * {@link ArtifactCacheOptions.maxUnusedMs}), least recently used first, never a pinned
   * artifact; a cache also does so by itself after each fetch and unpin. The first call (or
   * `get`) reads the directory: an agent calls it once its running jobs are pinned after a
   * restart. Resolves with the digests deleted; a file that cannot be deleted is logged and
   * kept.
   *
   * @throws {@link HostError} `FLOTILLA_HOST_ARTIFACT_CACHE_IN_USE` when another live process's
   * cache uses `dir`; `FLOTILLA_HOST_ARTIFACT_FETCH` when the directory cannot be created,
   * locked or listed.
   */
  prune(): Promise<string[]> {
    this.#queuedPass ??= this.#passes.then(() => {
      this.#queuedPass = undefined;
      return this.#evict();
    });
    const pass = this.#queuedPass;
    this.#passes = pass.catch(() => undefined);
    return pass;
  }

  /** What the cache holds now (once the directory has been read: after the first `get` or `prune`). */
  usage(): ArtifactCacheUsage {
    return { ...this.#index.usage(), maxBytes: this.#bounds.maxBytes };
  }

  /** A background eviction pass; its failures are logged. */
  #evictSoon(): void {
    this.prune().catch((err: unknown) =>
      this.#logger.warn({ err, dir: this.dir }, 'artifact cache eviction failed'),
    );
  }

  /** One eviction pass: removes victims one at a time, each chosen afresh (pins change meanwhile). */
  async #evict(): Promise<string[]> {
    await this.#load();
    const removed: string[] = [];
    const failed = new Set<string>();
    for (;;) {
      const sha256 = this.#index.victim(this.#bounds, this.#clock.now(), failed);
      if (sha256 === undefined) break;
      // Chosen and marked in one step (#remove does so before its first await): a get() that
      // pins it from now on waits for the removal, then fetches it again.
      try {
        const entry = await this.#remove(sha256);
        removed.push(sha256);
        this.#logger.info({ sha256, bytes: entry?.size }, 'artifact evicted from the cache');
      } catch (err) {
        failed.add(sha256);
        const path = join(this.dir, `${sha256}.slug`);
        this.#logger.error({ err, path }, 'artifact cannot be evicted: it stays in the cache');
      }
    }
    const { bytes } = this.#index.usage();
    if (bytes > this.#bounds.maxBytes)
      this.#logger.warn(
        { bytes, maxBytes: this.#bounds.maxBytes },
        'artifact cache over maxBytes with artifacts in use (pinned): it shrinks as they are unpinned',
      );
    return removed;
  }

  /**
   * Deletes the file of `sha256` and forgets it. The index forgets it and marks the removal
   * before the first await (a get() from then on waits for it); a failed delete restores the
   * entry and throws what the file system threw.
   */
  async #remove(sha256: string): Promise<IndexedArtifact | undefined> {
    const entry = this.#index.forget(sha256);
    const removal = rm(join(this.dir, `${sha256}.slug`), { force: true });
    this.#index.removing(
      sha256,
      removal.catch(() => undefined),
    );
    try {
      await removal;
    } catch (err) {
      if (entry !== undefined) this.#index.found(sha256, entry.size, entry.usedAt);
      throw err;
    }
    return entry;
  }

  /** Records a use: in the index, and as the file's mtime, which a restarted cache reads. */
  async #used(sha256: string, path: string, size: number): Promise<void> {
    const now = this.#clock.now();
    this.#index.touch(sha256, size, now);
    await utimes(path, now / 1000, now / 1000).catch((err: unknown) =>
      this.#logger.warn({ err, path }, 'artifact use cannot be recorded (mtime)'),
    );
  }

  /** Takes the directory's lock and reads it into the index, once (again after a failure). */
  #load(): Promise<void> {
    this.#loaded ??= this.#lock()
      .then(() => this.#scan())
      .catch((err: unknown) => {
        this.#loaded = undefined;
        throw err;
      });
    return this.#loaded;
  }

  /** Deletes the young `.part` files found when the dir was first read, once they are stale. */
  async #sweepLeftovers(): Promise<void> {
    for (const file of this.#youngParts) {
      try {
        const s = await stat(file);
        if (Date.now() - s.mtimeMs <= this.#idleTimeoutMs) continue;
        await rm(file, { force: true });
        this.#logger.info({ file }, 'deleted the leftover of an interrupted download');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#logger.warn({ err, file }, 'leftover download cannot be deleted');
          continue;
        }
      }
      this.#youngParts.delete(file);
    }
  }

  /**
   * Creates the directory and takes its lock file `.lock` for this process: a cache of another
   * live process on it (another agent) would evict what this one's jobs use, and the reverse.
   * Caches of one process may share a directory (a restart in place); pins are per cache.
   */
  async #lock(): Promise<void> {
    let holder: number | undefined;
    try {
      await mkdir(this.dir, { recursive: true });
      holder = await takePidLock(join(this.dir, '.lock'));
    } catch (cause) {
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `the artifact cache dir ${this.dir} cannot be created or locked`,
        { cause },
      );
    }
    if (holder !== undefined)
      throw new HostError(
        HostErrorCodes.ARTIFACT_CACHE_IN_USE,
        `the artifact cache dir ${this.dir} is used by process ${holder} (another agent): give each agent a dir of its own, or each evicts slugs the other's jobs run from`,
        { path: 'dir' },
      );
  }

  /**
   * Indexes the verified artifacts of the directory, by their mtime (last use), and deletes the
   * `.part` files of downloads that died with their process (an agent killed mid-fetch): those
   * not written for longer than `idleTimeoutMs`, which a live download never is (it would have
   * failed as stalled); younger ones are looked at again before each download (the leftover of
   * a crash just before a restart). Other names are left alone. A directory not there yet is
   * empty.
   */
  async #scan(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `the artifact cache dir ${this.dir} cannot be listed`,
        { cause },
      );
    }
    const now = Date.now();
    for (const name of names) {
      const file = join(this.dir, name);
      const entry = ENTRY.exec(name);
      const part = name.startsWith('.') && name.endsWith('.part');
      if (entry === null && !part) continue;
      try {
        const s = await stat(file);
        if (!s.isFile()) continue;
        if (entry?.[1] !== undefined) {
          this.#index.found(entry[1], s.size, s.mtimeMs);
        } else if (now - s.mtimeMs > this.#idleTimeoutMs) {
          await rm(file, { force: true });
          this.#logger.info({ file }, 'deleted the leftover of an interrupted download');
        } else this.#youngParts.add(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.#logger.warn({ err, file }, 'artifact cache entry cannot be read');
      }
    }
  }

  async #open(artifact: SlugArtifact, url: URL, signal: AbortSignal): Promise<Readable> {
    if (url.protocol === 'file:') {
      const file = fileURLToPath(url);
      const s = await stat(file).catch((cause: unknown) => {
        throw new HostError(
          HostErrorCodes.ARTIFACT_FETCH,
          `artifact ${artifact.url} cannot be read`,
          { cause },
        );
      });
      if (!s.isFile())
        throw new HostError(
          HostErrorCodes.ARTIFACT_FETCH,
          `artifact ${artifact.url} is not a file`,
        );
      return createReadStream(file);
    }
    let res: Response;
    try {
      res = await this.#fetch(url, {
        headers: this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` },
        // Not 'error': fetch reports that as a network error, which would read as retryable.
        redirect: 'manual',
        signal,
      });
    } catch (cause) {
      if (signal.aborted) throw cause;
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `artifact ${artifact.url} could not be fetched`,
        { cause, retryable: true },
      );
    }
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `artifact ${artifact.url} answered HTTP ${res.status}${location === null ? '' : ` to ${location}`}: redirects are refused (the token goes only where the release points), name the final URL`,
      );
    }
    if (!res.ok || res.body === null) {
      await res.body?.cancel().catch(() => undefined);
      throw new HostError(
        HostErrorCodes.ARTIFACT_FETCH,
        `artifact ${artifact.url} answered HTTP ${res.status}${res.status === 401 || res.status === 403 ? ': check the agent token' : ''}`,
        { retryable: res.status >= 500 || res.status === 429 || res.status === 408 },
      );
    }
    return Readable.fromWeb(res.body as WebReadableStream);
  }
}

/** Checks a descriptor and parses its URL; throws `FLOTILLA_HOST_ARTIFACT_INVALID`. */
function check(artifact: SlugArtifact): URL {
  const invalid = (path: string, what: string): HostError =>
    new HostError(HostErrorCodes.ARTIFACT_INVALID, `artifact ${path} ${what}`, { path });
  if (typeof artifact !== 'object' || artifact === null)
    throw invalid('', 'must be an object with url, sha256 and size');
  if (typeof artifact.sha256 !== 'string' || !SHA256.test(artifact.sha256))
    throw invalid('sha256', 'must be 64 lowercase hex digits');
  if (!Number.isSafeInteger(artifact.size) || artifact.size < 0)
    throw invalid('size', `must be a whole number of bytes, got ${String(artifact.size)}`);
  let url: URL | undefined;
  try {
    if (typeof artifact.url === 'string') url = new URL(artifact.url);
  } catch {
    // reported below
  }
  if (url === undefined || !['file:', 'http:', 'https:'].includes(url.protocol))
    throw invalid('url', 'must be a file://, http:// or https:// URL');
  if (url.username !== '' || url.password !== '')
    throw invalid('url', 'must not hold credentials: the agent sends its token');
  if (url.protocol === 'file:') {
    try {
      fileURLToPath(url);
    } catch {
      throw invalid('url', 'must be a file:// URL of a local path (no host)');
    }
  }
  return url;
}

/** Checks `urlPrefixes` and gives them normalised (as `URL#href`). */
function checkPrefixes(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const invalid = (why: string): HostError =>
    new HostError(HostErrorCodes.INVALID_OPTIONS, `ArtifactCache urlPrefixes ${why}`, {
      path: 'urlPrefixes',
    });
  if (!Array.isArray(value)) throw invalid('must be an array of URL prefixes');
  return value.map((prefix: unknown) => {
    let url: URL | undefined;
    try {
      if (typeof prefix === 'string') url = new URL(prefix);
    } catch {
      // reported below
    }
    if (
      url === undefined ||
      !['file:', 'http:', 'https:'].includes(url.protocol) ||
      !(prefix as string).endsWith('/') ||
      !url.href.endsWith('/')
    )
      throw invalid(
        `${describe(prefix)} is not a file://, http:// or https:// URL ending in "/" (a bare origin would also match its look-alikes)`,
      );
    return url.href;
  });
}

/** Throws `FLOTILLA_HOST_ARTIFACT_INVALID` unless `sha256` is 64 lowercase hex digits. */
function checkSha256(sha256: unknown): void {
  if (typeof sha256 !== 'string' || !SHA256.test(sha256))
    throw new HostError(
      HostErrorCodes.ARTIFACT_INVALID,
      `artifact sha256 ${describe(sha256)} must be 64 lowercase hex digits`,
      { path: 'sha256' },
    );
}

/** The sha256 of the file at `path`, or undefined when there is none. */
async function fileDigest(path: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(path), hash);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return hash.digest('hex');
}
