// Reading Linux's /proc: process start times (to tell a pid from a reused one), process groups
// and resident memory.
import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields of `/proc/<pid>/stat` the driver uses. */
export interface ProcStat {
  readonly pid: number;
  /** `R`, `S`, `D`, `Z` (zombie), `T`... */
  readonly state: string;
  readonly pgrp: number;
  /** Start time in clock ticks since boot: with the pid, it names one process for good. */
  readonly startTime: number;
}

/** Parses `/proc/<pid>/stat`; the command name may hold spaces and parentheses. */
export function parseStat(pid: number, text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close === -1) return undefined;
  const f = text.slice(close + 2).split(' ');
  const pgrp = Number(f[2]);
  const startTime = Number(f[19]);
  if (f[0] === undefined || !Number.isInteger(pgrp) || !Number.isInteger(startTime)) {
    return undefined;
  }
  return { pid, state: f[0], pgrp, startTime };
}

/** The stat of a process, or undefined when there is no such process. */
export async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still the process that started at `startTime`, and not a zombie. */
export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  const stat = await readStat(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z';
}

/** Every live (non-zombie) process by its process group, from one scan of /proc. */
export async function processGroups(): Promise<Map<number, number[]>> {
  const groups = new Map<number, number[]>();
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return groups;
  }
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      const stat = await readStat(Number(name));
      if (stat === undefined || stat.state === 'Z') return;
      const members = groups.get(stat.pgrp);
      if (members === undefined) groups.set(stat.pgrp, [stat.pid]);
      else members.push(stat.pid);
    }),
  );
  return groups;
}

/** Resident memory of a process in bytes (`VmRSS`), 0 when it is gone or has none. */
export async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Sends a signal to a process group; false when the group has no process left. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * The processes (other than this one) that hold one of `paths` open for writing: a job's
 * processes inherit its output files, also those that left its process group (`setsid`).
 * Readers (a `tail -f`) are not counted. Processes this user may not look into are skipped.
 */
export async function processesWriting(paths: readonly string[]): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const wanted = new Set(paths);
  const found: number[] = [];
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) return;
      let fds: string[];
      try {
        fds = await readdir(`/proc/${name}/fd`);
      } catch {
        return; // gone, or not ours to look into
      }
      for (const fd of fds) {
        const target = await readlink(`/proc/${name}/fd/${fd}`).catch(() => '');
        // an unlinked file reads as "<path> (deleted)"
        const path = target.endsWith(' (deleted)') ? target.slice(0, -10) : target;
        if (!wanted.has(path)) continue;
        const info = await readFile(`/proc/${name}/fdinfo/${fd}`, 'utf8').catch(() => '');
        const flags = /^flags:\s+([0-7]+)$/m.exec(info);
        // O_WRONLY (1) or O_RDWR (2)
        if (flags !== null && (parseInt(flags[1] as string, 8) & 3) !== 0) {
          const stat = await readStat(Number(name));
          if (stat !== undefined && stat.state !== 'Z') found.push(stat.pid);
          return;
        }
      }
    }),
  );
  return found;
}

/** A file of /proc read at once (the caller races a process), or undefined when it is gone. */
function readNow(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** The start time of `pid` (see {@link ProcStat}), read at once; undefined when it is gone. */
function startTimeNow(pid: number): number | undefined {
  const text = readNow(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseStat(pid, text)?.startTime;
}

/** The children of `pid`, read at once; undefined when it is gone. */
function childrenNow(pid: number): number[] | undefined {
  const list = readNow(`/proc/${pid}/task/${pid}/children`);
  return list
    ?.split(' ')
    .filter((p) => p !== '')
    .map(Number);
}

/**
 * Sends `signal` to the process group of `leader`, a job script's shell (bash), so that the
 * command the shell runs gets it even when it is starting. A child the shell forks to run a
 * command is the shell until it execs the command: a signal that comes then is caught by the
 * shell's handler and forgotten by the exec, and a signal the shell takes just before it forks
 * is never seen by the child at all. Either way the command would run on as if never signalled
 * (until SIGKILL ends the grace). So each child of the shell that was not running its command
 * when the signal was sent gets it again, once, as soon as it runs its command; one that ends
 * first, or whose pid another process now has, is left alone. Children are watched until the
 * shell ends or `watchMs` (5 s) passes.
 *
 * Returns false when the group has no process left (nothing was sent), and otherwise a promise
 * of the pids the signal went to again. A child that execs in the microseconds between the
 * read of the children and the signal may get it twice.
 */
export function signalShellGroup(
  leader: number,
  signal: NodeJS.Signals,
  options: { watchMs?: number } = {},
): false | Promise<number[]> {
  const leaderCmdline = readNow(`/proc/${leader}/cmdline`);
  const leaderStart = startTimeNow(leader);
  // Children running their command when the signal went: it reached them.
  const reached = new Set<number>();
  const before = childrenNow(leader);
  for (const pid of before ?? []) {
    const cmdline = readNow(`/proc/${pid}/cmdline`);
    if (cmdline !== undefined && cmdline !== leaderCmdline) reached.add(pid);
  }
  if (!killGroup(leader, signal)) return false;
  if (leaderCmdline === undefined || leaderStart === undefined || before === undefined)
    return Promise.resolve([]);
  const deadline = Date.now() + (options.watchMs ?? 5_000);
  const seen = new Map<number, number | undefined>(); // pid -> start time when first seen
  const resent: number[] = [];
  const check = (): boolean => {
    // The shell ended, or (later) its pid names another process, whose children are not ours.
    if (startTimeNow(leader) !== leaderStart) return false;
    const children = childrenNow(leader);
    if (children === undefined) return false;
    for (const pid of children) {
      if (reached.has(pid)) continue;
      if (!seen.has(pid)) seen.set(pid, startTimeNow(pid));
      const cmdline = readNow(`/proc/${pid}/cmdline`);
      if (cmdline === undefined || cmdline === '') continue; // ended (a zombie has none)
      if (cmdline === leaderCmdline) continue; // not yet running its command
      reached.add(pid);
      if (startTimeNow(pid) !== seen.get(pid)) continue;
      try {
        process.kill(pid, signal);
        resent.push(pid);
      } catch {
        // ended meanwhile
      }
    }
    return true;
  };
  return (async () => {
    for (let wait = 1; check() && Date.now() < deadline; wait = Math.min(wait * 2, 50))
      await sleep(wait, undefined, { ref: false });
    return resent;
  })();
}
