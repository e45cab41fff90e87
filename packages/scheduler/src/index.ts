/**
 * An Omega-style scheduler you can embed: a pure placement and reconcile core over a
 * read-only cluster snapshot.
 *
 * @packageDocumentation
 */
export { schedule } from './schedule.js';
export type { ScheduleOptions } from './schedule.js';
export { Planner } from './planner.js';
export type { PlannerOptions } from './planner.js';
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
export { ClusterKeys } from './keys.js';
export { parseFormation, parseHostRecord, parseJobRecord } from './records.js';
export type { HostAlloc, HostRecord, JobRecord } from './records.js';
export { ClusterSimulator } from './simulator.js';
export type { ClusterSimulatorOptions } from './simulator.js';
export { SchedulerError, SchedulerErrorCodes } from './errors.js';
export type { SchedulerErrorCode } from './errors.js';
