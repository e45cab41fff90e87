// The build's temporary directories: its work directory under workDir, and the default slug's
// directory under the OS temp directory while the slug is packed. Each names its owner in its
// own name, `<prefix><pid>-<host tag>-<random>`, so that it is never there without one (a
// builder killed between making it and writing an owner file left an ownerless one); making a
// new one removes those whose owner is gone. Directories of older builders name theirs in
// `.owner`, and are swept the same way.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hostTag, ownerGone, taggedOwnerGone } from './owner.js';

/** The prefix of work directories. */
export const WORK_PREFIX = 'flotilla-build-';
/** The prefix of the default slug's directories. */
export const SLUG_PREFIX = 'flotilla-slug-';

/** Makes a fresh work directory under `parent` (created if missing), sweeping stale ones. */
export function makeWorkDir(parent: string): Promise<string> {
  return makeOwnedDir(parent, WORK_PREFIX);
}

/**
 * Makes a fresh directory under `parent` (created if missing) whose name says this process owns
 * it, after removing those of `prefix` whose owner is gone.
 */
export async function makeOwnedDir(parent: string, prefix: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  const owned = new RegExp(`^${prefix}(\\d+)-([0-9a-f]{8})-[0-9a-f]{12}$`);
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const m = owned.exec(name);
    const gone =
      m === null
        ? ownerGone(await readFile(join(parent, name, '.owner'), 'utf8').catch(() => ''))
        : taggedOwnerGone(Number(m[1]), m[2] as string);
    if (gone) await rm(join(parent, name), { recursive: true, force: true });
  }
  for (;;) {
    const dir = join(parent, `${prefix}${process.pid}-${hostTag()}-${random()}`);
    try {
      await mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * Hands an owned directory over to the caller: renames it to `<prefix><random>`, a name no
 * sweep takes. Returns its new path.
 */
export async function handOver(dir: string, parent: string, prefix: string): Promise<string> {
  for (;;) {
    // 48 random bits: the name is free; one taken by a non-empty directory is tried again.
    const to = join(parent, `${prefix}${random()}`);
    try {
      await rename(dir, to);
      return to;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  }
}

function random(): string {
  return randomBytes(6).toString('hex');
}
