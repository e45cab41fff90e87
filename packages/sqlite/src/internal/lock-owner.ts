import { readFileSync, statSync } from 'node:fs';

/**
 * Finds the process that holds a POSIX lock on `path`, from `/proc/locks` (Linux). Returns
 * `undefined` elsewhere or when no holder is found: it only improves an error message.
 */
export function lockOwner(path: string): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const st = statSync(path);
    const dev = Number(st.dev);
    // Linux dev_t: the low 8 bits of the minor, then 12 bits of major, then the rest of minor.
    const major = (dev >>> 8) & 0xfff;
    const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
    const want = `${hex(major)}:${hex(minor)}:${st.ino}`;
    const exact = new Set<number>();
    const sameInode = new Set<number>();
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "1: POSIX  ADVISORY  WRITE 6682 fe:00:2156275 1073741824 1073742335"
      const fields = line.trim().split(/\s+/);
      const at = fields.findIndex((f) => f.split(':').length === 3 && f.endsWith(`:${st.ino}`));
      if (at < 1) continue;
      const pid = Number(fields[at - 1]);
      if (!Number.isSafeInteger(pid) || pid <= 0) continue;
      sameInode.add(pid);
      if ((fields[at] as string).toLowerCase() === want) exact.add(pid);
    }
    // Overlay filesystems may report another device than stat(): then trust a unique inode.
    const found = exact.size > 0 ? exact : sameInode;
    if (found.size === 1) return [...found][0];
  } catch {
    // No /proc, no permission, file gone: the message does without a pid.
  }
  return undefined;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
