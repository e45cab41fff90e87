// One build at a time per cache directory: a lock file naming its builder (pid@host), taken
// with O_EXCL. A lock whose builder is gone (crashed on this host) is taken over, and so is an
// empty one older than a builder takes to write its name (killed between creating and writing).
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { ownerGone, ownerString } from './owner.js';

/** The lock's name inside the cache directory. */
export const CACHE_LOCK = '.flotilla-build.lock';

/** Locks `cacheDir` for one build; returns the release function. */
export async function lockCache(cacheDir: string): Promise<() => Promise<void>> {
  const path = join(cacheDir, CACHE_LOCK);
  let holder = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${ownerString()}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    holder = (await readFile(path, 'utf8').catch(() => '')).trim();
    if (!ownerGone(holder) && !(holder === '' && (await abandoned(path)))) break;
    // The builder that held it is gone: take the lock over.
    await rm(path, { force: true });
  }
  throw new BuildpackError(
    BuildpackErrorCodes.CACHE_LOCKED,
    `another build (${JSON.stringify(holder.slice(0, 100))}) is using the cache directory ${cacheDir}; wait for it to end, give this build another cacheDir, or delete ${path} if that builder is gone for good`,
    { path: cacheDir, retryable: true },
  );
}

/** How long a live builder may take to write its name into the lock it created, ms. */
const EMPTY_LOCK_MS = 10_000;

async function abandoned(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs > EMPTY_LOCK_MS;
}
