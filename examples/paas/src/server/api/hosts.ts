import type { HostView, JobView } from '@flotilla/cluster';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { readJson, validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { hostId, hostPatchBody } from './schemas.js';

/** Job states that hold a place on a host (a job `down` or `crashed` is over). */
const RUNNING = new Set<JobView['state']>(['pending', 'starting', 'up', 'stopping']);

/**
 * `/hosts`: the cluster's hosts with their state and their jobs; `GET /hosts/{host}`: one of
 * them, read alone; `PATCH /hosts/{host}` drains
 * a host (it gets no new jobs and its jobs are placed elsewhere; with `deadline_ms`, those left
 * when it passes are stopped anyway) or makes it ineligible (no new jobs, its jobs stay), and
 * undoes either.
 */
export function hostRoutes(routes: Routes, d: ApiDeps): void {
  const list = async (signal: AbortSignal): Promise<Record<string, unknown>[]> => {
    const [hosts, jobs] = await Promise.all([
      d.controller.hosts({ signal }),
      d.cluster.jobs({ signal }),
    ]);
    const count = running(jobs);
    return hosts.map((h) => hostJson(h, count.get(h.record.id) ?? 0));
  };
  // That host and its jobs only: the answer costs the same in a cluster of any size.
  const one = async (
    id: string,
    signal: AbortSignal,
  ): Promise<Record<string, unknown> | undefined> => {
    const [host, jobs] = await Promise.all([
      d.cluster.host(id, { signal }),
      d.cluster.jobs({ hostId: id, signal }),
    ]);
    return host === undefined ? undefined : hostJson(host, running(jobs).get(id) ?? 0);
  };
  routes.on('GET', '/hosts', async ({ signal }) => list(signal));
  routes.on('GET', '/hosts/:host', async ({ params, signal }) => {
    const id = validate(hostId, params.host);
    const host = await one(id, signal);
    if (host === undefined)
      throw new PaasError(PaasErrorCodes.NOT_FOUND, `no host ${id}: see \`flotilla hosts\``, {
        status: 404,
      });
    return host;
  });
  routes.on('PATCH', '/hosts/:host', async ({ params, req, signal }) => {
    const id = validate(hostId, params.host);
    const body = await readJson(req, hostPatchBody);
    const options = { signal, ...(body.reason === undefined ? {} : { reason: body.reason }) };
    // Drain first: a host made ineligible and drained at once takes no job in between.
    if (body.drain === true)
      await d.cluster.drainHost(id, {
        ...options,
        ...(body.deadline_ms === undefined ? {} : { deadlineMs: body.deadline_ms }),
      });
    if (body.eligible !== undefined) await d.cluster.setEligible(id, body.eligible, options);
    if (body.drain === false) await d.cluster.undrainHost(id, options);
    return one(id, signal);
  });
}

/** Jobs not over yet, by host. */
function running(jobs: readonly JobView[]): Map<string, number> {
  const count = new Map<string, number>();
  for (const j of jobs)
    if (RUNNING.has(j.state)) count.set(j.record.hostId, (count.get(j.record.hostId) ?? 0) + 1);
  return count;
}

function hostJson(h: HostView, jobs: number): Record<string, unknown> {
  const deadline = h.control?.drainDeadline;
  return {
    id: h.record.id,
    address: h.record.addr,
    state: h.state,
    live: h.live,
    // Jobs placed on it and not over yet: a drained host is empty when this is 0.
    jobs,
    capacity: h.record.capacity,
    allocated: h.alloc,
    tags: h.record.tags ?? {},
    registered_at: h.record.registeredAt,
    drain: h.control?.drain ?? false,
    // When the drain stops waiting for replacements (ms since the epoch), and whether it has.
    ...(deadline === undefined ? {} : { drain_deadline: deadline, drain_forced: h.drainForced }),
    eligible: h.control?.eligible ?? true,
    ...(h.control?.reason === undefined ? {} : { reason: h.control.reason }),
  };
}
