/**
 * The cluster state every Flotilla component shares: the key layout, strict records with one
 * owner per field, and the typed {@link ClusterState} facade over a `Store`.
 *
 * @packageDocumentation
 */
export { ClusterState, MAX_DRAIN_DEADLINE_MS } from './cluster-state.js';
export type {
  AssignedItem,
  AssignedJob,
  ClusterStateEvents,
  ClusterStateOptions,
  DrainHostOptions,
  HostRegistration,
  HostView,
  JobView,
  RegisterHostOptions,
} from './cluster-state.js';
export { ClusterKeys } from './keys.js';
export {
  IMAGE_HOST_TAG,
  isValidTagName,
  isValidTagValue,
  MAX_TAG_VALUE_LENGTH,
  MAX_TAGS,
  RESERVED_TAG_PREFIX,
} from './host-tags.js';
export type { ClusterKey } from './keys.js';
export { decodeRecord } from './decode.js';
export type { ClusterRecord } from './decode.js';
export {
  drainForced,
  hostState,
  isResourceAmount,
  jobState,
  MAX_PROCESS_COUNT,
  MAX_RESOURCE,
  STOP_REASONS,
  validateFormation,
  validateHeartbeat,
  validateHostAlloc,
  validateHostControl,
  validateHostRecord,
  validateJobRecord,
  validateJobStatus,
  validateReleaseRecord,
  validateSchedulerEpoch,
} from './records.js';
export type {
  Artifact,
  Formation,
  HealthCheck,
  HealthCheckTiming,
  Heartbeat,
  HostAlloc,
  HostControl,
  HostRecord,
  HostState,
  JobRecord,
  JobState,
  JobStatus,
  ObservedJobState,
  ProcessDefinition,
  ProcessSpec,
  ReleaseRecord,
  Resources,
  SchedulerEpoch,
  StopReason,
} from './records.js';
export { isValidId, MAX_ID_LENGTH, validateId } from './ids.js';
export { jobRecordWriter } from './job-record-writer.js';
export type { IdKind } from './ids.js';
export { ClusterError, ClusterErrorCodes } from './errors.js';
export type { ClusterErrorCode } from './errors.js';
