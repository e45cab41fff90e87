// Who holds a lock or a work directory: a process on a host. Written as `pid@hostname`; an
// owner is known to be gone only when it was on this host and its pid is not alive (another
// host's or container's processes cannot be judged from here).
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

/** This process, as an owner string. */
export function ownerString(): string {
  return `${process.pid}@${hostname()}`;
}

/** Whether the owner written in `text` is known to be gone. */
export function ownerGone(text: string): boolean {
  const m = /^(\d+)@(.+)$/.exec(text.trim());
  if (m === null) return false;
  return m[2] === hostname() && pidGone(Number(m[1]));
}

/** This host's name, hashed: 8 hex digits, for names that must stay plain `[a-z0-9-]`. */
export function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

/** Whether process `pid` of the host tagged `host` ({@link hostTag}) is known to be gone. */
export function taggedOwnerGone(pid: number, host: string): boolean {
  return host === hostTag() && pidGone(pid);
}

/** Whether `pid` names no process of this host (a pid that is no pid is never gone). */
function pidGone(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
