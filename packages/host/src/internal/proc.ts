// Reading Linux's /proc: process start times (to tell a pid from a reused one), process groups
// and resident memory.
import { readdir, readFile, readlink } from 'node:fs/promises';

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
