// CPU time of a proxy under test: its process and its children (nginx's master and worker).
import { readdirSync, readFileSync } from 'node:fs';
import { processCpuSeconds } from '../lib/cpu.mjs';

/** The pids whose parent is `pid` (read from /proc; none where /proc is missing). */
function childPids(pid) {
  const out = [];
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(e));
    } catch {
      // it exited meanwhile
    }
  }
  return out;
}

/**
 * CPU seconds (user + system) used so far by `pid` and its children still running (their
 * own time, not that of children already reaped), or undefined where /proc is missing.
 */
export function processTreeCpuSeconds(pid) {
  const own = processCpuSeconds(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const c of childPids(pid)) total += processCpuSeconds(c) ?? 0;
  return total;
}

/**
 * CPU seconds all cores spent busy so far (everything but idle and iowait, from /proc/stat),
 * or undefined where /proc is missing.
 */
export function machineBusySeconds() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    // user nice system idle iowait irq softirq steal guest guest_nice: guest time is counted
    // in user and nice already.
    const busy = total - f[3] - f[4] - (f[8] ?? 0) - (f[9] ?? 0);
    return busy / 100;
  } catch {
    return undefined;
  }
}
