// The build's temporary directory, under workDir. Each names its owner in `.owner`; making a
// new one removes those whose owner is gone (a builder killed mid-build left its own behind).
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerGone, ownerString } from './owner.js';

const PREFIX = 'flotilla-build-';

/** Makes a fresh work directory under `parent` (created if missing), sweeping stale ones. */
export async function makeWorkDir(parent: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const owner = await readFile(join(parent, name, '.owner'), 'utf8').catch(() => '');
    if (ownerGone(owner)) await rm(join(parent, name), { recursive: true, force: true });
  }
  const work = await mkdtemp(join(parent, PREFIX));
  await writeFile(join(work, '.owner'), `${ownerString()}\n`);
  return work;
}
