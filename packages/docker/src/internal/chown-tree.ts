import { lchown, lstat, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { givesAwayHost } from './host-paths.js';

/**
 * Gives a directory tree to `uid:gid` (links themselves, never what they point to), so that the
 * non-root user of a container can write where it is bind-mounted. Skips what already is. Never
 * crosses into another filesystem, and refuses (throws) a tree that is, holds or lies in the
 * host's system or shared directories: callers check first, this is the last guard.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const real = await realpath(dir);
  const system = givesAwayHost(dir) ?? givesAwayHost(real);
  if (system !== undefined) {
    throw new Error(
      `refusing to give ${dir} (${real}) to uid ${uid}: it would give away ${system}`,
    );
  }
  const root = await lstat(real);
  await walk(real, root.dev, uid, gid);
}

async function walk(path: string, dev: number, uid: number, gid: number): Promise<void> {
  const st = await lstat(path);
  if (st.dev !== dev) return; // a mount point under the tree: not ours to change
  if (st.uid !== uid || st.gid !== gid) await lchown(path, uid, gid);
  if (!st.isDirectory()) return;
  for (const e of await readdir(path, { withFileTypes: true })) {
    const child = join(path, e.name);
    if (e.isDirectory()) await walk(child, dev, uid, gid);
    else {
      const s = await lstat(child);
      if (s.dev === dev && (s.uid !== uid || s.gid !== gid)) await lchown(child, uid, gid);
    }
  }
}
