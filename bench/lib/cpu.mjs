// CPU accounting for the benchmarks: this process's CPU time and another process's (an etcd
// the benchmark started), so that a rate can be printed with where the time went.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const TICKS = 100;

/** CPU seconds (user + system) used so far by process `pid`, or undefined where /proc is missing. */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) used so far by this process, all threads (GC included). */
export function ownCpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * Starts measuring; `stop(wallSeconds, items)` returns the CPU share (1 = one core busy for the
 * whole interval) of this process and of `otherPid` (when given), and the CPU microseconds each
 * spent per item: on a shared machine the rates follow the load, the cost per item much less.
 */
export function cpuMeter(otherPid) {
  const own0 = ownCpuSeconds();
  const other0 = otherPid === undefined ? undefined : processCpuSeconds(otherPid);
  return {
    stop(wallSeconds, items) {
      const own = ownCpuSeconds() - own0;
      const other =
        other0 === undefined ? undefined : (processCpuSeconds(otherPid) ?? other0) - other0;
      const share = (x) => Math.round((x / wallSeconds) * 100) / 100;
      const per = (x) => Math.round((x / items) * 1e7) / 10;
      return {
        nodeCores: share(own),
        nodeCpuUsPerItem: per(own),
        ...(other === undefined ? {} : { etcdCores: share(other), etcdCpuUsPerItem: per(other) }),
      };
    },
  };
}
