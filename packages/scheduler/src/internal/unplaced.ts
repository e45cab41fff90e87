import { RESERVED_TAG_PREFIX } from '@flotilla/cluster';
import type { Cluster } from './cluster.js';
import type { Group, Need } from './placement.js';
import type { HostSnapshot, ProcessSpec, Unplaced } from '../types.js';

/** Says why a need could not be placed: no host with the tags, or no room (and how much there is). */
export function describeUnplaced(
  cluster: Cluster,
  need: Need,
  count: number,
  rejections: ReadonlyMap<string, number>,
): Unplaced {
  const { group, spec } = need;
  const base = { app: group.app, release: group.release, type: group.type, count };
  const { cpu, memory } = spec.resources;
  const eligible = cluster.eligible(group.signature, spec.constraints);
  if (eligible.length === 0) {
    const tags = spec.constraints ?? {};
    // Tags under RESERVED_TAG_PREFIX are set by host agents from what they can do (their
    // driver runs images, say), never by an operator: the fix is a host that can.
    const reserved = Object.keys(tags).filter((k) => k.startsWith(RESERVED_TAG_PREFIX));
    return {
      ...base,
      reason: 'no-matching-host',
      message:
        reserved.length > 0
          ? `no up host has the tags ${JSON.stringify(tags)}: host agents set ${reserved.join(', ')} from what their driver runs; start a host that has ${reserved.length === 1 ? 'it' : 'them'}`
          : `no up host has the tags ${JSON.stringify(tags)}: tag a host or change the constraints`,
    };
  }
  let bestCpu = 0;
  let bestMem = 0;
  const room = (c: number, m: number): number =>
    Math.min(c / Math.max(cpu, 1), m / Math.max(memory, 1));
  const hosts = need.host === undefined ? eligible : [need.host];
  for (const h of hosts) {
    const c = (cluster.capCpu[h] as number) - (cluster.usedCpu[h] as number);
    const m = (cluster.capMem[h] as number) - (cluster.usedMem[h] as number);
    if (room(c, m) > room(bestCpu, bestMem)) {
      bestCpu = c;
      bestMem = m;
    }
  }
  const where =
    need.host === undefined
      ? `any of ${eligible.length} eligible hosts`
      : `host ${(cluster.hosts[need.host] as HostSnapshot).id}`;
  let rejected = '';
  if (rejections.size > 0) {
    const [name, n] = [...rejections.entries()].sort((a, b) => b[1] - a[1])[0] as [string, number];
    rejected = `; plugin ${name} rejected ${n} host checks`;
  }
  return {
    ...base,
    reason: 'no-capacity',
    message: `${count} job(s) need ${cpu} millicores and ${memory} MiB each; the roomiest of ${where} has ${bestCpu} millicores and ${bestMem} MiB free${rejected}: add capacity or lower the count`,
  };
}

/**
 * Says that a process type asks for more jobs than the limit: `wanted` in all (per host times
 * eligible hosts for omni types), of which `missing` are not running. O(1): nothing is counted
 * job by job.
 */
export function describeOverLimit(
  group: Group,
  spec: ProcessSpec,
  wanted: number,
  missing: number,
  limit: number,
  hosts: number,
): Unplaced {
  const asked =
    spec.omni === true
      ? `${spec.count} per host on ${hosts} eligible hosts (${wanted} jobs)`
      : `${wanted} jobs`;
  return {
    app: group.app,
    release: group.release,
    type: group.type,
    count: missing,
    reason: 'over-limit',
    message: `${group.type} asks for ${asked}, over the limit of ${limit} per process type: lower the count, or raise maxJobsPerType if the cluster is meant to run that many`,
  };
}
