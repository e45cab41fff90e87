// One build at a time per cache directory: a lock file holding the builder's pid, taken with
// O_EXCL. A lock whose process is gone (a builder that crashed) is taken over.
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';

const LOCK = '.flotilla-build.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks `cacheDir` for one build; returns the release function. */
export async function lockCache(cacheDir: string): Promise<() => Promise<void>> {
  const path = join(cacheDir, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) break;
    // The builder that held it is gone: take the lock over.
    await rm(path, { force: true });
  }
  throw new BuildpackError(
    BuildpackErrorCodes.CACHE_LOCKED,
    `another build is using the cache directory ${cacheDir}; wait for it to end, or give this build another cacheDir`,
    { path: cacheDir, retryable: true },
  );
}
