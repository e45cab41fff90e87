// Killing what a step started where no cgroup can be made: the processes of the step's session
// and process group (the step leads both), and every descendant of those, also one that left
// for a session of its own (`setsid`) while its parent lives. They are stopped first, scan after
// scan, so that none can fork between the scan and the kill. An orphan that left the session
// after its parent died is out of reach: only a cgroup holds on to that one.
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { waitFor } from './poll.js';

/** How long killed processes may take to go, ms. */
const GONE_WAIT_MS = 10_000;
const MAX_ROUNDS = 50;

interface Proc {
  readonly pid: number;
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  readonly session: number;
  readonly start: string;
}

/**
 * Kills everything of the session `leader` leads, and their descendants; resolves once they are
 * gone, with whether there was anything to kill. With `leaderStart` (its {@link processStart}),
 * a process now at the leader's pid that started at another time means the pid was reused, the
 * session long gone: nothing is killed.
 */
export async function killSessionTree(leader: number, leaderStart?: string): Promise<boolean> {
  const marked = new Map<number, string>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const procs = await scan();
    const now = procs.find((p) => p.pid === leader);
    if (leaderStart !== undefined && now !== undefined && now.start !== leaderStart) break;
    const found = members(leader, procs);
    let fresh = 0;
    for (const proc of found) {
      if (marked.get(proc.pid) === proc.start) continue;
      marked.set(proc.pid, proc.start);
      fresh++;
      signal(proc.pid, 'SIGSTOP');
    }
    if (fresh === 0) break;
  }
  if (marked.size === 0) return false;
  signal(-leader, 'SIGKILL');
  for (const pid of marked.keys()) signal(pid, 'SIGKILL');
  const left = new Map(marked);
  await waitFor(async () => {
    for (const [pid, start] of left) {
      if (await running(pid, start)) return false;
      left.delete(pid);
    }
    return true;
  }, GONE_WAIT_MS);
  return true;
}

function members(leader: number, procs: readonly Proc[]): Proc[] {
  const chosen = new Map<number, Proc>();
  for (const proc of procs) {
    if (proc.pid === process.pid || proc.pid <= 1) continue;
    if (proc.pid === leader || proc.session === leader || proc.pgrp === leader) {
      chosen.set(proc.pid, proc);
    }
  }
  // Descendants, also those in sessions of their own.
  for (let grew = true; grew;) {
    grew = false;
    for (const proc of procs) {
      if (chosen.has(proc.pid) || proc.pid === process.pid || proc.pid <= 1) continue;
      if (chosen.has(proc.ppid)) {
        chosen.set(proc.pid, proc);
        grew = true;
      }
    }
  }
  return [...chosen.values()].filter((proc) => proc.state !== 'Z' && proc.state !== 'X');
}

async function scan(): Promise<Proc[]> {
  const names = await readdir('/proc').catch(() => [] as string[]);
  const procs = await Promise.all(
    names.filter((name) => /^\d+$/.test(name)).map((name) => stat(Number(name))),
  );
  return procs.filter((p): p is Proc => p !== undefined);
}

async function stat(pid: number): Promise<Proc | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseStat(pid, text);
}

/** A process of `/proc/<pid>/stat`'s text. */
function parseStat(pid: number, text: string): Proc {
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    session: Number(fields[3]),
    start: fields[19] ?? '',
  };
}

/**
 * When process `pid` started (clock ticks since boot, /proc's field 22), undefined when there is
 * none (or a zombie): with the pid, what names one process for as long as the host runs.
 */
export function processStart(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const proc = parseStat(pid, text);
  return proc.state === 'Z' || proc.state === 'X' || proc.start === '' ? undefined : proc.start;
}

/** Whether `pid` is still the process that started at `start`, and not a zombie. */
async function running(pid: number, start: string): Promise<boolean> {
  const proc = await stat(pid);
  return proc !== undefined && proc.start === start && proc.state !== 'Z' && proc.state !== 'X';
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
