/**
 * An Omega-style scheduler you can embed: a pure placement and reconcile core over a
 * read-only cluster snapshot.
 *
 * @packageDocumentation
 */
export { schedule } from './schedule.js';
export type { ScheduleOptions } from './schedule.js';
export { Planner } from './planner.js';
export type { PlannerOptions, Strategy } from './planner.js';
export type { HostView, PlacementPlugin, PlacementRequest } from './plugins.js';
export type {
  ClusterSnapshot,
  Formation,
  HostSnapshot,
  HostState,
  JobSnapshot,
  JobState,
  Plan,
  PlannedStart,
  PlannedStop,
  ProcessSpec,
  Resources,
  StopReason,
  Unplaced,
  UnplacedReason,
} from './types.js';
export { SchedulerError, SchedulerErrorCodes } from './errors.js';
export type { SchedulerErrorCode } from './errors.js';
