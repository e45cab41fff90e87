import { FlotillaError } from '@flotilla/core';

/**
 * Every code a {@link SlugError} can carry. The README documents each; codes are never reused
 * for another meaning. An aborted call does not use a code of its own: it rejects with the
 * signal's `reason`, as every other Flotilla call does.
 */
export const SlugErrorCodes = {
  /** An argument is of the wrong kind: a path that is not a string, a limit that is not a positive integer, a digest that is not 64 hex digits. */
  INVALID_ARGUMENT: 'FLOTILLA_SLUG_INVALID_ARGUMENT',
  /** `packSlug`: the directory to pack does not exist or is not a directory. */
  NOT_DIRECTORY: 'FLOTILLA_SLUG_NOT_DIRECTORY',
  /** `packSlug`: the directory `dest` is to be written in does not exist or is not a directory. */
  DEST_NOT_DIRECTORY: 'FLOTILLA_SLUG_DEST_NOT_DIRECTORY',
  /** `packSlug`: a file was written to, deleted or replaced (by a directory or a link) while it was being packed. */
  CHANGED: 'FLOTILLA_SLUG_CHANGED',
  /** `extractSlug`: an entry name is absolute or has a `..` component, so it would land outside the target directory. */
  ESCAPE: 'FLOTILLA_SLUG_ESCAPE',
  /**
   * A symlink or hard link that is absolute, points outside the tree (also through a chain of
   * links), loops, or a hard link to something that is not a file packed before it; or an entry
   * that would be written through a symlink.
   */
  LINK: 'FLOTILLA_SLUG_LINK',
  /** A device, FIFO, socket or other entry that is neither a file, a directory nor a link. */
  SPECIAL: 'FLOTILLA_SLUG_SPECIAL',
  /** `extractSlug`: an entry's path is already taken: the same name twice, or a file or link used as a directory. */
  CONFLICT: 'FLOTILLA_SLUG_CONFLICT',
  /** `extractSlug`: the files add up to more than `maxBytes`. */
  TOO_LARGE: 'FLOTILLA_SLUG_TOO_LARGE',
  /** `extractSlug`: the slug holds more than `maxEntries` entries. */
  TOO_MANY_ENTRIES: 'FLOTILLA_SLUG_TOO_MANY_ENTRIES',
  /** `extractSlug`: the slug is not a gzipped tar, or it is truncated or corrupt. */
  CORRUPT: 'FLOTILLA_SLUG_CORRUPT',
  /** `extractSlug`: the slug's sha256 differs from `expectedSha256`. */
  DIGEST: 'FLOTILLA_SLUG_DIGEST',
  /** `extractSlug`: the target exists and is not an empty directory. */
  NOT_EMPTY: 'FLOTILLA_SLUG_NOT_EMPTY',
  /** `extractSlug`: an entry's name, or one of its components, is longer than the filesystem takes. */
  NAME_TOO_LONG: 'FLOTILLA_SLUG_NAME_TOO_LONG',
} as const;

/** The union of {@link SlugErrorCodes} values. */
export type SlugErrorCode = (typeof SlugErrorCodes)[keyof typeof SlugErrorCodes];

/** What a {@link SlugError} concerns, beyond its code. */
export interface SlugErrorDetails {
  /** The offending entry, as named in the slug or relative to the packed directory. */
  readonly entry?: string;
  /** The file or directory on disk concerned. */
  readonly path?: string;
  readonly cause?: unknown;
}

/**
 * The error thrown by `@flotilla/slug`. Match on {@link SlugError.code}.
 *
 * @example
 * ```ts
 * try {
 *   await extractSlug('app.tgz', '/srv/jobs/web.1');
 * } catch (err) {
 *   if (err instanceof SlugError && err.code === 'FLOTILLA_SLUG_ESCAPE') console.error(err.entry);
 *   else throw err;
 * }
 * ```
 */
export class SlugError extends FlotillaError<SlugErrorCode> {
  /** The offending entry (cut to 200 characters), when the error concerns one. */
  readonly entry: string | undefined;
  /** The file or directory on disk concerned, when there is one. */
  readonly path: string | undefined;

  constructor(code: SlugErrorCode, message: string, details: SlugErrorDetails = {}) {
    super(code, message, { cause: details.cause });
    this.entry = details.entry === undefined ? undefined : cutName(details.entry);
    this.path = details.path;
  }
}

/** The longest entry name an error message or field carries; longer names are cut. */
const MAX_NAME = 200;

/**
 * An entry name fit for a message: cut to {@link MAX_NAME} characters and quoted, so control
 * characters and newlines cannot forge log lines.
 *
 * @internal
 */
export function quoteName(name: string): string {
  return JSON.stringify(cutName(name));
}

function cutName(name: string): string {
  return name.length > MAX_NAME ? `${name.slice(0, MAX_NAME)}...` : name;
}
