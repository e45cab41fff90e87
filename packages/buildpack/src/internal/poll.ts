// Waiting for other processes to go. The kernel gives no event a process can await for
// another's death outside its children (pidfd is not reachable from Node), and `cgroup.events`
// notifications need inotify on cgroupfs, which is not everywhere: so it is polled, 1 ms
// doubling to 50 ms.
import { setTimeout as delay } from 'node:timers/promises';

/** Polls `done` until it holds (or throws) or `timeoutMs` ran out. */
export async function waitFor(done: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let interval = 1;
  while (!(await done().catch(() => true))) {
    if (Date.now() > deadline) return;
    await delay(interval);
    interval = Math.min(interval * 2, 50);
  }
}
