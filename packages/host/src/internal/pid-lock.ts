// A lock file naming the process that holds it ({"pid","startTime"}): taken over when that
// process is gone (killed, crashed: nothing releases it), refused while it lives. Shared by the
// driver's state directory and the artifact cache's directory.
import { open, readFile, unlink } from 'node:fs/promises';
import { isSameProcess, readStat } from './proc.js';

const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/**
 * Takes the lock file `path` for this process: creates it, or takes it over from a process that
 * is gone (or from this process). Resolves with undefined once it holds it, or with the pid of
 * the live process that does. Throws what the file system throws.
 */
export async function takePidLock(path: string): Promise<number | undefined> {
  const self = await readStat(process.pid);
  const mine = JSON.stringify({ pid: process.pid, startTime: self?.startTime ?? 0 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(mine);
      } finally {
        await fh.close();
      }
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    let holder: { pid?: unknown; startTime?: unknown } = {};
    try {
      holder = JSON.parse(await readFile(path, 'utf8')) as typeof holder;
    } catch {
      // unreadable: a holder that died while writing it
    }
    if (holder.pid === process.pid && holder.startTime === (self?.startTime ?? 0)) return undefined;
    if (
      int(holder.pid) &&
      int(holder.startTime) &&
      holder.pid !== process.pid &&
      (await isSameProcess(holder.pid, holder.startTime))
    )
      return holder.pid;
    await unlink(path).catch(() => undefined);
  }
}
