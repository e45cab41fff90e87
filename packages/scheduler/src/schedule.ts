import { validateSnapshot } from './internal/validate.js';
import { Planner, type PlannerOptions } from './planner.js';
import type { ClusterSnapshot, Plan } from './types.js';

/** Options of {@link schedule}. */
export interface ScheduleOptions extends PlannerOptions {
  /** Skip input validation (when the snapshot was validated as it was built). */
  readonly trusted?: boolean;
}

/**
 * Plans what to start and stop so that the cluster runs what the formations declare: the
 * scheduler's pure core. No I/O, no timers, no randomness beyond `seed`.
 *
 * Reconcile: jobs on down or draining hosts, jobs of no formation and jobs on hosts that no
 * longer match their constraints are stopped (and replaced); each (app, release, type) is
 * scaled to its count, surplus stopping newest first; `omni` types run `count` jobs on every
 * eligible host. Placement then runs the strategy; jobs that fit nowhere come back in
 * `unplaced` with the reason.
 *
 * Bad input never gets further than validation: an entry that is not an object, a duplicate
 * id, an amount that is not a whole number from 0 to 2^40, a process type that reserves no CPU
 * or no memory are refused with the path of the field. A count above `maxJobsPerType` (100,000
 * by default) is not an error: that type is reported `unplaced` with reason `over-limit`, at a
 * cost that does not depend on the count.
 *
 * @throws {@link SchedulerError} `FLOTILLA_SCHEDULER_INVALID_SNAPSHOT` naming the bad field in
 * `path`, `FLOTILLA_SCHEDULER_INVALID_OPTIONS`.
 *
 * @example
 * ```ts
 * const plan = schedule(
 *   {
 *     hosts: [{ id: 'h1', tags: { zone: 'a' }, capacity: { cpu: 4000, memory: 8192 }, state: 'up' }],
 *     jobs: [],
 *     formations: [{ app: 'demo', release: 'v1',
 *       processes: { web: { count: 2, resources: { cpu: 500, memory: 512 } } } }],
 *   },
 *   { strategy: 'spread' },
 * );
 * plan.start; // [{ app: 'demo', release: 'v1', type: 'web', hostId: 'h1', ... } x 2]
 * ```
 */
export function schedule(snapshot: ClusterSnapshot, options: ScheduleOptions = {}): Plan {
  const planner = new Planner(options);
  if (options?.trusted !== true) validateSnapshot(snapshot);
  planner.load(snapshot, { frozen: true });
  return planner.plan({ all: true, keep: true });
}
