import { isResourceAmount, MAX_RESOURCE } from '@flotilla/cluster';
import { SchedulerError, SchedulerErrorCodes } from '../errors.js';
import type { ClusterSnapshot } from '../types.js';

const HOST_STATES = new Set(['up', 'ineligible', 'draining', 'down']);

function bad(path: string, what: string): SchedulerError {
  return new SchedulerError(SchedulerErrorCodes.INVALID_SNAPSHOT, `${path} ${what}`, { path });
}

/** A value for a message: strings quoted and cut short, never a call to a hostile toString. */
export function shown(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  return String(value as number | boolean | bigint | undefined);
}

/** A switch: faster than a Set lookup in a loop over a million jobs. */
function isJobState(value: unknown): boolean {
  switch (value) {
    case 'pending':
    case 'starting':
    case 'up':
    case 'stopping':
    case 'down':
    case 'crashed':
      return true;
    default:
      return false;
  }
}

function isName(value: unknown): boolean {
  return typeof value === 'string' && value !== '';
}

/** A whole number of millicores or MiB, from 0 to the cluster's MAX_RESOURCE. */
function isAmount(value: unknown): boolean {
  return isResourceAmount(value);
}

function checkObject(value: unknown, path: string, what: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad(path, `must be ${what}, got ${shown(value)}`);
}

function checkName(value: unknown, path: string): void {
  if (!isName(value)) throw bad(path, `must be a non-empty string, got ${shown(value)}`);
}

/**
 * CPU and memory: whole millicores and MiB from `min` to MAX_RESOURCE (2^40). Fractions are
 * refused: sums of them drift, and a host's books must balance to the unit.
 */
function checkResources(r: unknown, path: string, min: number): void {
  checkObject(r, path, '{ cpu, memory }');
  for (const k of ['cpu', 'memory'] as const) {
    const v = (r as Record<string, unknown>)[k];
    if (!isAmount(v) || (v as number) < min) {
      throw bad(
        `${path}.${k}`,
        `must be a whole number of ${k === 'cpu' ? 'millicores' : 'MiB'} from ${min} to ${MAX_RESOURCE}, got ${shown(v)}`,
      );
    }
  }
}

function checkTags(tags: unknown, path: string): void {
  if (tags === undefined) return;
  checkObject(tags, path, 'a record of strings');
  for (const [k, v] of Object.entries(tags as object)) {
    if (typeof v !== 'string') throw bad(`${path}.${k}`, `must be a string, got ${shown(v)}`);
  }
}

/**
 * Throws `FLOTILLA_SCHEDULER_INVALID_SNAPSHOT` naming the first bad field: an entry that is not
 * an object, an empty or duplicate id, an amount that is not a whole number in range, a process
 * type that reserves no CPU or no memory, a count that is not a whole number >= 0. Counts have
 * no upper bound here: a type that asks for more than the planner's limit is reported unplaced.
 */
export function validateSnapshot(snapshot: ClusterSnapshot): void {
  checkObject(snapshot, 'snapshot', '{ hosts, jobs, formations }');
  for (const k of ['hosts', 'jobs', 'formations'] as const) {
    if (!Array.isArray(snapshot[k])) throw bad(`snapshot.${k}`, 'must be an array');
  }
  // Index loops throughout: forEach and for-of skip or hand out the holes of a sparse array.
  const hosts: readonly unknown[] = snapshot.hosts;
  const hostIds = new Set<string>();
  for (let i = 0; i < hosts.length; i++) {
    const p = `hosts[${i}]`;
    const h = hosts[i] as Record<string, unknown>;
    checkObject(h, p, 'a host object');
    checkName(h.id, `${p}.id`);
    const id = h.id as string;
    if (hostIds.has(id)) throw bad(`${p}.id`, `duplicates host id ${shown(id)}`);
    hostIds.add(id);
    checkResources(h.capacity, `${p}.capacity`, 0);
    if (!HOST_STATES.has(h.state as string))
      throw bad(`${p}.state`, `must be up, ineligible, draining or down, got ${shown(h.state)}`);
    checkTags(h.tags, `${p}.tags`);
  }
  const jobIds = new Set<string>();
  const jobs: readonly unknown[] = snapshot.jobs;
  // Hot loop (a million jobs): no string is built unless something is wrong.
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i] as Record<string, unknown>;
    if (typeof j !== 'object' || j === null) checkObject(j, `jobs[${i}]`, 'a job object');
    if (!isName(j.id)) checkName(j.id, `jobs[${i}].id`);
    const id = j.id as string;
    if (jobIds.has(id)) throw bad(`jobs[${i}].id`, `duplicates job id ${shown(id)}`);
    jobIds.add(id);
    if (!isName(j.app) || !isName(j.release) || !isName(j.type) || !isName(j.hostId)) {
      for (const k of ['app', 'release', 'type', 'hostId'] as const)
        checkName(j[k], `jobs[${i}].${k}`);
    }
    const r = j.resources as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || !isAmount(r.cpu) || !isAmount(r.memory)) {
      checkResources(r, `jobs[${i}].resources`, 0);
    }
    if (!isJobState(j.state))
      throw bad(`jobs[${i}].state`, `must be a job state, got ${shown(j.state)}`);
    if (j.createdAt !== undefined && !Number.isFinite(j.createdAt)) {
      throw bad(`jobs[${i}].createdAt`, `must be a time in ms, got ${shown(j.createdAt)}`);
    }
  }
  const formations: readonly unknown[] = snapshot.formations;
  const seen = new Map<string, Set<string>>();
  for (let i = 0; i < formations.length; i++) {
    const p = `formations[${i}]`;
    const f = formations[i] as Record<string, unknown>;
    checkObject(f, p, 'a formation object');
    checkName(f.app, `${p}.app`);
    checkName(f.release, `${p}.release`);
    const app = f.app as string;
    const release = f.release as string;
    let releases = seen.get(app);
    if (releases === undefined) seen.set(app, (releases = new Set()));
    if (releases.has(release))
      throw bad(p, `duplicates the formation of ${shown(app)} ${shown(release)}: merge them`);
    releases.add(release);
    checkObject(f.processes, `${p}.processes`, 'a record of process types');
    for (const [type, spec] of Object.entries(f.processes as object)) {
      const q = `${p}.processes.${type}`;
      if (type === '') throw bad(q, 'has an empty process type');
      checkObject(spec, q, '{ count, resources }');
      const s = spec as Record<string, unknown>;
      if (!Number.isSafeInteger(s.count) || (s.count as number) < 0) {
        throw bad(`${q}.count`, `must be a whole number >= 0, got ${shown(s.count)}`);
      }
      // A job that reserves nothing fits anywhere, any number of times.
      checkResources(s.resources, `${q}.resources`, 1);
      checkTags(s.constraints, `${q}.constraints`);
      if (s.omni !== undefined && typeof s.omni !== 'boolean')
        throw bad(`${q}.omni`, `must be true or false, got ${shown(s.omni)}`);
    }
  }
}
