import { SchedulerError, SchedulerErrorCodes } from '../errors.js';
import type { ClusterSnapshot, Resources } from '../types.js';

const HOST_STATES = new Set(['up', 'draining', 'down']);

function bad(path: string, what: string): SchedulerError {
  return new SchedulerError(SchedulerErrorCodes.INVALID_SNAPSHOT, `${path} ${what}`, { path });
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

function isAmount(value: unknown): boolean {
  return typeof value === 'number' && value >= 0 && Number.isFinite(value);
}

function checkName(value: unknown, path: string): void {
  if (typeof value !== 'string' || value === '') throw bad(path, 'must be a non-empty string');
}

export function checkResources(r: Resources | undefined, path: string): void {
  if (typeof r !== 'object' || r === null) throw bad(path, 'must be { cpu, memory }');
  for (const k of ['cpu', 'memory'] as const) {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw bad(
        `${path}.${k}`,
        `must be a finite number >= 0 (${k === 'cpu' ? 'millicores' : 'MiB'}), got ${String(v)}`,
      );
    }
  }
}

function checkTags(tags: unknown, path: string): void {
  if (tags === undefined) return;
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags))
    throw bad(path, 'must be a record of strings');
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== 'string') throw bad(`${path}.${k}`, `must be a string, got ${typeof v}`);
  }
}

/** Throws `FLOTILLA_SCHEDULER_INVALID_SNAPSHOT` naming the first bad field. */
export function validateSnapshot(snapshot: ClusterSnapshot): void {
  if (typeof snapshot !== 'object' || snapshot === null)
    throw bad('snapshot', 'must be { hosts, jobs, formations }');
  for (const k of ['hosts', 'jobs', 'formations'] as const) {
    if (!Array.isArray(snapshot[k])) throw bad(`snapshot.${k}`, 'must be an array');
  }
  const hostIds = new Set<string>();
  snapshot.hosts.forEach((h, i) => {
    const p = `hosts[${i}]`;
    checkName(h.id, `${p}.id`);
    if (hostIds.has(h.id)) throw bad(`${p}.id`, `duplicates host id ${JSON.stringify(h.id)}`);
    hostIds.add(h.id);
    checkResources(h.capacity, `${p}.capacity`);
    if (!HOST_STATES.has(h.state))
      throw bad(`${p}.state`, `must be up, draining or down, got ${String(h.state)}`);
    checkTags(h.tags, `${p}.tags`);
  });
  const jobIds = new Set<string>();
  const jobs = snapshot.jobs;
  // Hot loop (a million jobs): no string is built unless something is wrong.
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i];
    if (typeof j !== 'object' || j === null) throw bad(`jobs[${i}]`, 'must be a job object');
    if (!isName(j.id)) checkName(j.id, `jobs[${i}].id`);
    if (jobIds.has(j.id)) throw bad(`jobs[${i}].id`, `duplicates job id ${JSON.stringify(j.id)}`);
    jobIds.add(j.id);
    if (!isName(j.app) || !isName(j.release) || !isName(j.type) || !isName(j.hostId)) {
      for (const k of ['app', 'release', 'type', 'hostId'] as const)
        checkName(j[k], `jobs[${i}].${k}`);
    }
    const r = j.resources;
    if (typeof r !== 'object' || r === null || !isAmount(r.cpu) || !isAmount(r.memory)) {
      checkResources(r, `jobs[${i}].resources`);
    }
    if (!isJobState(j.state))
      throw bad(`jobs[${i}].state`, `must be a job state, got ${String(j.state)}`);
  }
  const formations = new Set<string>();
  snapshot.formations.forEach((f, i) => {
    const p = `formations[${i}]`;
    checkName(f.app, `${p}.app`);
    checkName(f.release, `${p}.release`);
    const key = `${f.app}\u0000${f.release}`;
    if (formations.has(key))
      throw bad(p, `duplicates the formation of ${f.app} ${f.release}: merge them`);
    formations.add(key);
    if (typeof f.processes !== 'object' || f.processes === null)
      throw bad(`${p}.processes`, 'must be a record');
    for (const [type, spec] of Object.entries(f.processes)) {
      const q = `${p}.processes.${type}`;
      if (type === '') throw bad(q, 'has an empty process type');
      if (!Number.isSafeInteger(spec.count) || spec.count < 0) {
        throw bad(`${q}.count`, `must be an integer >= 0, got ${String(spec.count)}`);
      }
      checkResources(spec.resources, `${q}.resources`);
      checkTags(spec.constraints, `${q}.constraints`);
    }
  });
}
