import { constants } from 'node:fs';
import { lchown, lstat, open, readdir, realpath, type FileHandle } from 'node:fs/promises';
import { givesAwayHost } from './host-paths.js';

/** Opens a directory itself, never through a symlink (ELOOP or ENOTDIR otherwise). */
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Gives a directory tree to `uid:gid` (links themselves, never what they point to), so that the
 * non-root user of a container can write where it is bind-mounted. Skips what already is. Never
 * crosses into another filesystem, and refuses (throws) a tree that is, holds or lies in the
 * host's system or shared directories: callers check first, this is the last guard.
 *
 * The tree may be written by that user meanwhile (another job on the same slug dir): each
 * directory is opened without following links and read and changed through its descriptor,
 * so a directory swapped for a symlink mid-walk is never followed out of the tree. Entries that
 * vanish mid-walk are skipped.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const real = await realpath(dir);
  const system = givesAwayHost(dir) ?? givesAwayHost(real);
  if (system !== undefined) {
    throw new Error(
      `refusing to give ${dir} (${real}) to uid ${uid}: it would give away ${system}`,
    );
  }
  const root = await open(real, DIR_FLAGS);
  try {
    await walk(root, (await root.stat()).dev, uid, gid);
  } finally {
    await root.close();
  }
}

async function walk(dir: FileHandle, dev: number, uid: number, gid: number): Promise<void> {
  const st = await dir.stat();
  if (st.dev !== dev) return; // a mount point under the tree: not ours to change
  if (st.uid !== uid || st.gid !== gid) await dir.chown(uid, gid);
  // Names are looked up in the directory the descriptor holds, whatever its path is now.
  const base = `/proc/self/fd/${dir.fd}`;
  for (const e of await readdir(base, { withFileTypes: true })) {
    const child = `${base}/${e.name}`;
    if (e.isDirectory()) {
      const sub = await open(child, DIR_FLAGS).catch(gone);
      if (sub !== undefined) {
        try {
          await walk(sub, dev, uid, gid);
        } finally {
          await sub.close();
        }
        continue;
      }
      // no longer a directory (a symlink now?): given as what it is, below
    }
    const s = await lstat(child).catch(gone);
    if (s !== undefined && s.dev === dev && (s.uid !== uid || s.gid !== gid)) {
      await lchown(child, uid, gid).catch(gone);
    }
  }
}

/** Undefined for an entry that vanished or changed kind mid-walk; anything else rethrown. */
function gone(err: unknown): undefined {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return undefined;
  throw err;
}
