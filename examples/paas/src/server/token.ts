import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { PaasError, PaasErrorCodes } from '../errors.js';

/** The API token, and where it is kept (`undefined` when it came from a flag or variable). */
export interface ServerToken {
  readonly token: string;
  readonly path: string | undefined;
}

/** Tokens must be printable, without spaces: they travel in headers and in git URLs. */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~+/=-]{16,512}$/;

/**
 * The server's token: the given one, or the one kept in `path`, or a new random one written
 * there (mode 0600).
 */
export async function loadOrCreateToken(path: string, given?: string): Promise<ServerToken> {
  if (given !== undefined) {
    if (!TOKEN_PATTERN.test(given))
      throw new PaasError(
        PaasErrorCodes.INVALID_OPTIONS,
        'the token must be 16 to 512 characters of A-Z a-z 0-9 . _ ~ + / = -',
      );
    return { token: given, path: undefined };
  }
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (!TOKEN_PATTERN.test(token))
      throw new PaasError(
        PaasErrorCodes.DATA_DIR,
        `${path} does not hold a valid token: delete it and a new one is made at the next start`,
      );
    return { token, path };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof PaasError) throw err;
      throw new PaasError(PaasErrorCodes.DATA_DIR, `cannot read the token at ${path}`, {
        cause: err,
      });
    }
  }
  const token = randomBytes(32).toString('hex');
  try {
    await writeFile(path, token + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateToken(path);
    throw new PaasError(PaasErrorCodes.DATA_DIR, `cannot write the token to ${path}`, {
      cause: err,
    });
  }
  return { token, path };
}
