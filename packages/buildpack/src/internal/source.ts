// Copying the app's source into the build directory: never .git, and never what .slugignore
// names (gitignore syntax, read from the source's root).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { copyFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import ignore from 'ignore';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { readAppFile } from './app-file.js';

/** Files up to this size are copied with a synchronous call. */
const SMALL_FILE = 256 * 1024;

/** Copies `source` into the existing, empty `dest`; returns how many entries it copied. */
export async function copySource(
  source: string,
  dest: string,
  signal: AbortSignal | undefined,
): Promise<{ entries: number; ignored: number }> {
  const slugignore = (await readAppFile(source, '.slugignore')) ?? '';
  const ig = ignore().add(slugignore);
  let entries = 0;
  let ignored = 0;
  // Per entry, synchronous calls (microseconds each with the page cache warm): as promises,
  // a trip through the thread pool per call made copying a source of thousands of files take
  // seconds. The event loop is yielded at each directory.
  const visit = async (rel: string): Promise<void> => {
    signal?.throwIfAborted();
    const names = (await readdir(join(source, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (name === '.git') continue;
      const from = join(source, path);
      const st = fs.lstatSync(from);
      if (ig.ignores(st.isDirectory() ? `${path}/` : path)) {
        ignored++;
        continue;
      }
      const to = join(dest, path);
      if (st.isDirectory()) {
        fs.mkdirSync(to, { mode: (st.mode & 0o777) | 0o700 });
        await visit(path);
      } else if (st.isFile()) {
        // Large files go through the thread pool, so as not to hold the event loop.
        if (st.size <= SMALL_FILE) fs.copyFileSync(from, to, fs.constants.COPYFILE_FICLONE);
        else await copyFile(from, to, fs.constants.COPYFILE_FICLONE);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(from), to);
      } else {
        throw new BuildpackError(
          BuildpackErrorCodes.INVALID_SOURCE,
          `the source holds ${JSON.stringify(path)}, which is not a file, directory or symlink; remove it or list it in .slugignore`,
          { path: from },
        );
      }
      entries++;
    }
  };
  await visit('');
  return { entries, ignored };
}

/** The commit checked out in `source`, when it is a git work tree. */
export async function gitHead(source: string): Promise<string | undefined> {
  if ((await stat(join(source, '.git')).catch(() => undefined)) === undefined) return undefined;
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-c', 'core.fsmonitor=false', '-C', source, 'rev-parse', '--verify', '--quiet', 'HEAD'],
      { timeout: 10_000 },
      (err, stdout) => resolve(err ? undefined : stdout.trim() || undefined),
    );
  });
}
