// Who holds a lock or a work directory: a process on a host. Written as `pid@hostname`; an
// owner is known to be gone only when it was on this host and its pid is not alive (another
// host's or container's processes cannot be judged from here).
import { hostname } from 'node:os';

/** This process, as an owner string. */
export function ownerString(): string {
  return `${process.pid}@${hostname()}`;
}

/** Whether the owner written in `text` is known to be gone. */
export function ownerGone(text: string): boolean {
  const m = /^(\d+)@(.+)$/.exec(text.trim());
  if (m === null) return false;
  const pid = Number(m[1]);
  if (m[2] !== hostname() || !Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
