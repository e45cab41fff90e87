import { lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Gives a directory tree to `uid:gid` (links themselves, never what they point to), so that the
 * non-root user of a container can write where it is bind-mounted. Skips what already is.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(dir);
  if (st.uid !== uid || st.gid !== gid) await lchown(dir, uid, gid);
  if (!st.isDirectory()) return;
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) await chownTree(path, uid, gid);
    else {
      const s = await lstat(path);
      if (s.uid !== uid || s.gid !== gid) await lchown(path, uid, gid);
    }
  }
}
