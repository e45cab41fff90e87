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

/** The children of `pid`, read at once; undefined when it is gone. */
function childrenNow(pid: number): number[] | undefined {
  const list = readNow(`/proc/${pid}/task/${pid}/children`);
  return list
    ?.split(' ')
    .filter((p) => p !== '')
    .map(Number);
}

/** `/proc/<pid>/stat` of `pid`, read at once; undefined when it is gone. */
function statNow(pid: number): ProcStat | undefined {
  const text = readNow(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseStat(pid, text);
}

/**
 * Sends `signal` to the process group of `leader`, so that the command a job script's shell
 * runs gets it even when it is starting. `isJobShell` tells the job script's shell by its
 * command line (`/proc/<pid>/cmdline`).
 *
 * A child the shell forks to run a command is a copy of the shell until it execs the command:
 * a signal that comes then is caught by the shell's handler and forgotten by the exec. And a
 * signal the shell itself takes just before it forks never reaches that child (the shell runs
 * its trap only once the command ends). Either way the command runs on as if never signalled;
 * for a stop, until SIGKILL ends the grace. So, while the leader is still the job script's
 * shell (not a command it exec'd) and for at most `watchMs` (5 s):
 *
 * - each child of the shell that was a copy of it when the signal went gets the signal once
 *   more as soon as it execs its command;
 * - with `endsJob` (the signal's trap ends the job once the running command does: TERM, INT,
 *   HUP, QUIT), so does each child the shell forks afterwards: the command it was starting.
 *   Without it, later children are commands started after the signal, and are left alone.
 *
 * Only the shell's own children in its process group are considered, never their children; a
 * child that ends first, or whose pid another process now has, is left alone. Returns false
 * when the group has no process left or `leader` now names a process started at another time
 * than `startTime` (nothing was sent), else a promise of the pids the signal
 * went to again. A child that execs in the microseconds between the read of the children and
 * the signal may get it twice.
 */
export function signalShellGroup(
  leader: number,
  signal: NodeJS.Signals,
  options: {
    isJobShell: (cmdline: string) => boolean;
    endsJob: boolean;
    /** The leader's start time when known: a pid that now names another process is not signalled. */
    startTime?: number;
    watchMs?: number;
  },
): false | Promise<number[]> {
  // No handler catches these, so no starting command can miss them.
  if (signal === 'SIGKILL' || signal === 'SIGSTOP' || signal === 'SIGCONT')
    return killGroup(leader, signal) && Promise.resolve([]);
  const leaderCmdline = readNow(`/proc/${leader}/cmdline`);
  const leaderStart = statNow(leader)?.startTime;
  if (
    options.startTime !== undefined &&
    leaderStart !== undefined &&
    leaderStart !== options.startTime
  )
    return false;
  if (leaderCmdline === undefined || !options.isJobShell(leaderCmdline))
    return killGroup(leader, signal) && Promise.resolve([]);
  // The children when the signal went: copies of the shell are watched, the rest were reached.
  const copies = new Set<number>();
  const before = new Set<number>();
  for (const pid of childrenNow(leader) ?? []) {
    before.add(pid);
    if (readNow(`/proc/${pid}/cmdline`) === leaderCmdline) copies.add(pid);
  }
  if (!killGroup(leader, signal)) return false;
  const deadline = Date.now() + (options.watchMs ?? 5_000);
  const watched = new Map<number, number>(); // pid -> start time when first seen
  const done = new Set<number>();
  const resent: number[] = [];
  const check = (): boolean => {
    // Stop once the shell ended, exec'd a command, or its pid names another process.
    const stat = statNow(leader);
    if (stat === undefined || stat.startTime !== leaderStart) return false;
    if (readNow(`/proc/${leader}/cmdline`) !== leaderCmdline) return false;
    for (const pid of childrenNow(leader) ?? []) {
      if (done.has(pid)) continue;
      if (!copies.has(pid) && (before.has(pid) || !options.endsJob)) continue;
      const child = statNow(pid);
      if (child === undefined || child.state === 'Z') continue;
      if (child.pgrp !== leader) {
        done.add(pid); // left the job's group: not the job script's to signal
        continue;
      }
      const first = watched.get(pid);
      if (first === undefined) watched.set(pid, child.startTime);
      else if (first !== child.startTime) {
        done.add(pid); // another process under a reused pid
        continue;
      }
      if (readNow(`/proc/${pid}/cmdline`) === leaderCmdline) continue; // not yet exec'd
      done.add(pid);
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
