// One build at a time per cache directory: a lock file naming its builder (pid@host), taken
// with O_EXCL. A lock whose builder is gone (crashed on this host) is taken over, and so is an
// empty one older than a builder takes to write its name (killed between creating and writing).
// A takeover is done by one builder at a time, under a guard directory made with mkdir: it
// reads the lock again, removes it only if it is still the one judged gone, and makes its own
// before it lets go of the guard, so that no other taker can remove the fresh lock.
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { ownerGone, ownerString } from './owner.js';

/** The lock's name inside the cache directory. */
export const CACHE_LOCK = '.flotilla-build.lock';

/** Locks `cacheDir` for one build; returns the release function. */
export async function lockCache(cacheDir: string): Promise<() => Promise<void>> {
  const path = join(cacheDir, CACHE_LOCK);
  const release = (): Promise<void> => rm(path, { force: true });
  if (await create(path)) return release;
  const holder = await read(path);
  if ((await gone(path, holder ?? '')) && (await takeOver(path))) return release;
  throw new BuildpackError(
    BuildpackErrorCodes.CACHE_LOCKED,
    `another build (${JSON.stringify((holder ?? '').slice(0, 100))}) is using the cache directory ${cacheDir}; wait for it to end, give this build another cacheDir, or delete ${path} if that builder is gone for good`,
    { path: cacheDir, retryable: true },
  );
}

/** How long a live builder may take to write its name into the lock it created, ms. */
const EMPTY_LOCK_MS = 10_000;

/** Creates the lock naming this builder; false when there is one. */
async function create(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(`${ownerString()}\n`);
  } finally {
    await handle.close();
  }
  return true;
}

/** The lock's holder, trimmed; undefined when there is no lock. */
async function read(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return '';
  }
}

/** Whether the lock at `path` held by `holder` is known to be left by a builder that is gone. */
async function gone(path: string, holder: string): Promise<boolean> {
  return ownerGone(holder) || (holder === '' && (await abandoned(path)));
}

/** Takes over a lock judged gone, one taker at a time; false when another builder holds it now. */
async function takeOver(path: string): Promise<boolean> {
  const guard = `${path}.takeover`;
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(guard);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // Another builder is taking it over, unless the guard is that old: left by a taker killed
    // mid-way, it is removed and tried once more.
    if (attempt > 0 || !(await abandoned(guard))) return false;
    await rm(guard, { recursive: true, force: true });
  }
  try {
    // Read again under the guard: a faster taker may hold it by now.
    const holder = await read(path);
    if (holder !== undefined) {
      if (!(await gone(path, holder))) return false;
      await rm(path, { force: true });
    }
    return await create(path);
  } finally {
    await rm(guard, { recursive: true, force: true });
  }
}

async function abandoned(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs > EMPTY_LOCK_MS;
}
