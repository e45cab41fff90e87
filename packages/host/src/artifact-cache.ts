import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { type Logger, silentLogger } from '@flotilla/core';
import { HostError, HostErrorCodes } from './errors.js';
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
   * deleted: caches that share a `dir` should use one value.
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
  /** A pino-compatible logger (default: silent). */
  readonly logger?: Logger;
}

const SHA256 = /^[0-9a-f]{64}$/;

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
 * @example
 * ```ts
 * const cache = new ArtifactCache({ dir: '/var/lib/flotilla/artifacts', token });
 * const path = await cache.get(release.artifact); // verified, ready for extractSlug
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
  /** The sweep of stale `.part` files, done once, before this cache's first download. */
  #swept: Promise<void> | undefined;

  constructor(options: ArtifactCacheOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '')
      throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'ArtifactCache needs a dir', {
        path: 'dir',
      });
    if (options.token !== undefined && !/^[\x21-\x7e]+$/.test(options.token))
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        'ArtifactCache token must be printable ASCII without spaces (it is sent as a header)',
        { path: 'token' },
      );
    this.#idleTimeoutMs = intOption(options.idleTimeoutMs, 'idleTimeoutMs', 30_000, 1, 2 ** 31 - 1);
    this.#urlPrefixes = checkPrefixes(options.urlPrefixes);
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
   * `FLOTILLA_HOST_ARTIFACT_CORRUPT` when what came is not the artifact; the signal's reason
   * when `signal` aborts. A failed download leaves no file behind.
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
    const path = join(this.dir, `${artifact.sha256}.slug`);
    const cached = await stat(path).catch(() => undefined);
    if (cached?.isFile() === true && cached.size === artifact.size) return path;
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
    this.#swept ??= this.#sweep();
    await this.#swept;
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
   * Deletes `.part` files of downloads that died with their process (an agent killed mid-fetch):
   * those not written for longer than `idleTimeoutMs`, which a live download never is (it
   * would have failed as stalled). Failures are logged, never fatal.
   */
  async #sweep(): Promise<void> {
    const now = Date.now();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      this.#logger.warn({ err, dir: this.dir }, 'artifact cache dir cannot be listed');
      return;
    }
    for (const name of names) {
      if (!name.startsWith('.') || !name.endsWith('.part')) continue;
      const file = join(this.dir, name);
      try {
        const s = await stat(file);
        if (!s.isFile() || now - s.mtimeMs <= this.#idleTimeoutMs) continue;
        await rm(file, { force: true });
        this.#logger.info({ file }, 'deleted the leftover of an interrupted download');
      } catch (err) {
        this.#logger.warn({ err, file }, 'leftover download cannot be deleted');
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
