/**
 * An Omega-style scheduler you can embed: a pure placement and reconcile core over a
 * read-only cluster snapshot.
 *
 * @packageDocumentation
 */
export { schedule } from './schedule.js';
export type { ScheduleOptions } from './schedule.js';
export { DEFAULT_MAX_JOBS_PER_TYPE, Planner } from './planner.js';
export type { PlannerOptions } from './planner.js';
export type { HostView, PlacementPlugin, PlacementRequest } from './plugins.js';
// Records (Formation, Resources, StopReason...) are @flotilla/cluster's: import them from there.
export type {
  ClusterSnapshot,
  HostSnapshot,
  JobSnapshot,
  Plan,
  PlannedStart,
  PlannedStop,
  Strategy,
  Unplaced,
  UnplacedReason,
} from './types.js';
export { Scheduler } from './scheduler.js';
export type {
  CrashLoop,
  PlanReport,
  SchedulerEvents,
  SchedulerOptions,
  SchedulerState,
} from './scheduler.js';
export { ClusterSimulator } from './simulator.js';
export type { ClusterSimulatorOptions, SimulatedHost, SimulatedJob } from './simulator.js';
export { SchedulerError, SchedulerErrorCodes } from './errors.js';
export type { SchedulerErrorCode } from './errors.js';
