import { ClusterError, ClusterErrorCodes } from './errors.js';

/** The longest id accepted, in characters. */
export const MAX_ID_LENGTH = 200;

const ID = /^[A-Za-z0-9][A-Za-z0-9._@:+-]*$/;

/** What an id names, for messages. */
export type IdKind = 'app' | 'release' | 'process type' | 'host' | 'job';

/**
 * Whether `id` can be a path segment of a cluster key and be read back as the same id: 1 to
 * 200 characters from `A-Z a-z 0-9 . _ - @ : +`, starting with a letter or digit. No `/`, no
 * whitespace, no control characters, no `.` or `..`.
 */
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_ID_LENGTH && ID.test(id);
}

/**
 * Throws `FLOTILLA_CLUSTER_INVALID_ID` unless {@link isValidId}. Writers call it before any
 * key is built, so an id that could not be read back is never written.
 */
export function validateId(kind: IdKind, id: unknown, path: string = kind): asserts id is string {
  if (isValidId(id)) return;
  const shown =
    typeof id === 'string'
      ? JSON.stringify(id.length > 60 ? `${id.slice(0, 60)}...` : id)
      : String(id);
  const why =
    typeof id !== 'string'
      ? 'it must be a string'
      : id.length === 0
        ? 'it is empty'
        : id.length > MAX_ID_LENGTH
          ? `it is ${id.length} characters long, over ${MAX_ID_LENGTH}`
          : id.includes('/')
            ? 'it contains "/", which would split its key'
            : 'use 1 to 200 characters from A-Z a-z 0-9 . _ - @ : +, starting with a letter or digit';
  throw new ClusterError(ClusterErrorCodes.INVALID_ID, `invalid ${kind} id ${shown}: ${why}`, {
    path,
  });
}
