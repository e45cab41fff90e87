import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import type { ArtifactInfo, ArtifactStore } from './artifact-store.js';
import { ControllerError, ControllerErrorCodes } from './errors.js';

/** Options of {@link DirectoryArtifactStore}. */
export interface DirectoryArtifactStoreOptions {
  /** Where artifacts are kept, one file `<digest>.tgz` each. Created if missing. */
  readonly dir: string;
  /**
   * The URL hosts fetch a digest from (default the file's `file://` URL): the reference PaaS
   * gives its artifact endpoint (`http://127.0.0.1:7000/artifacts/<digest>`).
   */
  readonly url?: (digest: string) => string;
}

const DIGEST = /^[0-9a-f]{64}$/;

/**
 * An {@link ArtifactStore} in a directory: each artifact is copied in under a temporary name
 * while its sha256 is computed and renamed to `<digest>.tgz` only when it matches, so a file
 * under a digest name always has that digest.
 *
 * @example
 * ```ts
 * const artifacts = new DirectoryArtifactStore({ dir: '/var/lib/flotilla/artifacts' });
 * const { digest } = await artifacts.put('/tmp/slug.tgz', { sha256 });
 * artifacts.url(digest); // file:///var/lib/flotilla/artifacts/<digest>.tgz
 * ```
 */
export class DirectoryArtifactStore implements ArtifactStore {
  /** The directory, absolute. */
  readonly dir: string;
  readonly #url: ((digest: string) => string) | undefined;

  constructor(options: DirectoryArtifactStoreOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '' || options.dir.includes('\0'))
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        'DirectoryArtifactStore needs a dir: a path without NUL',
        { path: 'dir' },
      );
    this.dir = resolve(options.dir);
    this.#url = options.url;
  }

  async put(
    path: string,
    options: { readonly sha256?: string; readonly signal?: AbortSignal } = {},
  ): Promise<ArtifactInfo> {
    if (options.sha256 !== undefined) checkDigest(options.sha256);
    await mkdir(this.dir, { recursive: true });
    const temp = join(this.dir, `.put-${randomBytes(6).toString('hex')}.tmp`);
    try {
      await copyFile(path, temp);
      const hash = createHash('sha256');
      const read = createReadStream(temp);
      await pipeline(read, hash, { signal: options.signal });
      const digest = hash.digest('hex');
      if (options.sha256 !== undefined && options.sha256 !== digest)
        throw new ControllerError(
          ControllerErrorCodes.ARTIFACT_INVALID,
          `artifact ${path} has sha256 ${digest}, not the expected ${options.sha256}: it changed after it was built; build again`,
          { path: 'sha256' },
        );
      // Stored already: one call. A file under a digest name is whole (only a rename makes one)
      // and holds that digest's bytes, so its size is the temp's; utimes makes it new, so that
      // a collection (or an app's destroy) that found no build naming it does not delete it
      // while this put's build records it. If it finds none (never stored, or collected since:
      // ENOENT), or cannot touch it, the bytes are stored below; a rename over a copy stored
      // meanwhile by a concurrent put replaces it with the same bytes. A delete after this call
      // removes it, as after any put.
      const now = Date.now();
      const touched = await utimes(this.#file(digest), now / 1000, now / 1000).then(
        () => true,
        () => false,
      );
      if (touched) return { digest, size: read.bytesRead, createdAt: now };
      await rename(temp, this.#file(digest));
      const info = await this.stat(digest);
      if (info === undefined)
        // Collected by another process between the rename and this stat: storing it again wins.
        throw new ControllerError(
          ControllerErrorCodes.CONFLICT,
          `artifact ${digest} was removed (collected by another process?) right after it was stored: store it again`,
          { retryable: true },
        );
      return info;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(err instanceof ControllerError))
        throw new ControllerError(
          ControllerErrorCodes.ARTIFACT_INVALID,
          `artifact file ${path} does not exist`,
          { path: 'path', cause: err },
        );
      throw err;
    } finally {
      await rm(temp, { force: true });
    }
  }

  async stat(digest: string): Promise<ArtifactInfo | undefined> {
    checkDigest(digest);
    const s = await stat(this.#file(digest)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    // To 10 µs: a time set in ms (by put) reads back a microsecond off, and is given as set.
    return s === undefined
      ? undefined
      : { digest, size: s.size, createdAt: Math.round(s.mtimeMs * 100) / 100 };
  }

  async open(digest: string): Promise<Readable> {
    if ((await this.stat(digest)) === undefined)
      throw new ControllerError(
        ControllerErrorCodes.ARTIFACT_INVALID,
        `artifact ${digest} is not in ${this.dir}: it was collected or never stored; build again`,
        { path: 'digest' },
      );
    return createReadStream(this.#file(digest));
  }

  async delete(digest: string): Promise<boolean> {
    checkDigest(digest);
    const existed = (await this.stat(digest)) !== undefined;
    await rm(this.#file(digest), { force: true });
    return existed;
  }

  async list(): Promise<ArtifactInfo[]> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const out: ArtifactInfo[] = [];
    for (const name of names.sort()) {
      const digest = name.endsWith('.tgz') ? name.slice(0, -4) : '';
      if (!DIGEST.test(digest)) continue; // temporary files and strangers are not artifacts
      const info = await this.stat(digest);
      if (info !== undefined) out.push(info);
    }
    return out;
  }

  url(digest: string): string {
    checkDigest(digest);
    return this.#url !== undefined ? this.#url(digest) : pathToFileURL(this.#file(digest)).href;
  }

  #file(digest: string): string {
    return join(this.dir, `${digest}.tgz`);
  }
}

function checkDigest(digest: unknown): asserts digest is string {
  if (typeof digest !== 'string' || !DIGEST.test(digest))
    throw new ControllerError(
      ControllerErrorCodes.INVALID_INPUT,
      `${JSON.stringify(String(digest).slice(0, 80))} is not a digest: give 64 lowercase hex digits`,
      { path: 'digest' },
    );
}
