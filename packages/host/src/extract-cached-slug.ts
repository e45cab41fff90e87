import { rm } from 'node:fs/promises';
import { extractSlug, SlugErrorCodes } from '@flotilla/slug';
import type { ArtifactCache, SlugArtifact } from './artifact-cache.js';

/** Options of {@link extractCachedSlug}. */
export interface ExtractCachedSlugOptions {
  /** Rejects with the signal's reason when aborted (the fetch and the extraction stop). */
  readonly signal?: AbortSignal;
  /** Passed to `extractSlug`: the most bytes the files may add up to. */
  readonly maxBytes?: number;
  /** Passed to `extractSlug`: the most entries the slug may hold. */
  readonly maxEntries?: number;
}

/**
 * Fetches a slug through the cache (once per host) and extracts it into `dir` (absent or
 * empty), checked against the artifact's sha256 as it is read. A cached copy damaged since it
 * was fetched (the disk rotted, something wrote to it) fails that check at every use for as
 * long as the cache keeps it: it is discarded and fetched again, once. A second mismatch is
 * the artifact's own, and is thrown. Pin the artifact first (see {@link ArtifactCache.pin}).
 *
 * @throws what {@link ArtifactCache.get} and `extractSlug` throw (`FLOTILLA_SLUG_DIGEST`
 * when even a fresh copy does not match).
 *
 * @example
 * ```ts
 * using _pin = cache.pin(release.artifact.sha256);
 * await extractCachedSlug(cache, release.artifact, `/var/lib/flotilla/run/${jobId}`);
 * ```
 */
export async function extractCachedSlug(
  artifacts: ArtifactCache,
  artifact: SlugArtifact,
  dir: string,
  options: ExtractCachedSlugOptions = {},
): Promise<void> {
  const { signal } = options;
  const extract = async (): Promise<void> => {
    const slug = await artifacts.get(artifact, signal === undefined ? {} : { signal });
    await extractSlug(slug, dir, {
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
      ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
      ...(signal === undefined ? {} : { signal }),
      expectedSha256: artifact.sha256,
    });
  };
  try {
    await extract();
  } catch (err) {
    if ((err as { code?: unknown }).code !== SlugErrorCodes.DIGEST) throw err;
    signal?.throwIfAborted();
    await artifacts.discard(artifact.sha256);
    await rm(dir, { recursive: true, force: true });
    await extract();
  }
}
