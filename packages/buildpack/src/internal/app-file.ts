// Reading one of the app's own control files (Procfile, .buildpacks, .slugignore): a regular
// file of bounded size, never through a symlink, whose target could be any file of the build
// host (its lines then quoted in the build's output, which the app's owner reads).
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';

/** The largest control file read. */
const MAX_BYTES = 1024 * 1024;

/** The text of `dir/name`, or undefined when there is none. */
export async function readAppFile(dir: string, name: string): Promise<string | undefined> {
  const path = join(dir, name);
  const refuse = (why: string, cause?: unknown): BuildpackError =>
    new BuildpackError(
      BuildpackErrorCodes.INVALID_SOURCE,
      `the app's ${name} ${why}; make it a regular file of at most ${MAX_BYTES} bytes`,
      { path: name, cause },
    );
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw refuse('is a symlink', err);
    throw refuse(`cannot be read (${(err as Error).message})`, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw refuse('is not a regular file');
    if (st.size > MAX_BYTES) throw refuse(`is ${st.size} bytes`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}
