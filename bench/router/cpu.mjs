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
