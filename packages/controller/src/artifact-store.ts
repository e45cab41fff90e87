import type { Readable } from 'node:stream';

/** An artifact kept in an {@link ArtifactStore}. */
export interface ArtifactInfo {
  /** Hex sha256 of its bytes: its id. */
  readonly digest: string;
  readonly size: number;
  /** When it was stored (last stored again), ms since the epoch. */
  readonly createdAt: number;
}

/**
 * Where slugs are kept, by digest. A directory by default ({@link DirectoryArtifactStore}); the
 * interface fits S3-like stores. Hosts fetch an artifact from {@link ArtifactStore.url} and
 * check its digest.
 */
export interface ArtifactStore {
  /**
   * Stores the file at `path` (copied; the file is left as it is), checking its sha256 against
   * `sha256` when given (`FLOTILLA_CONTROLLER_ARTIFACT_INVALID` on a mismatch, and nothing is
   * kept). Storing a digest already there keeps the stored bytes and makes its `createdAt` now
   * (it was stored again: collectors spare it as new). Resolves with what is stored.
   */
  put(
    path: string,
    options?: { readonly sha256?: string; readonly signal?: AbortSignal },
  ): Promise<ArtifactInfo>;
  /** What is stored under a digest, or undefined. */
  stat(digest: string): Promise<ArtifactInfo | undefined>;
  /** The artifact's bytes. `FLOTILLA_CONTROLLER_ARTIFACT_INVALID` when it is not there. */
  open(digest: string): Promise<Readable>;
  /** Removes it; false when it was not there. */
  delete(digest: string): Promise<boolean>;
  /** Every artifact stored. */
  list(): Promise<ArtifactInfo[]>;
  /** The URL hosts fetch it from (`file://...` for a directory; an http endpoint for a server). */
  url(digest: string): string;
}
