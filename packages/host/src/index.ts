/**
 * Run a Flotilla cluster's jobs on a machine: the `HostAgent`, the `Driver` interface every driver implements,
 * `ProcessDriver` (local process groups, the embedded default), per-job log ring buffers, and
 * the job spec and environment a driver runs. The contract suite every driver passes is in
 * `@flotilla/host/testing`.
 *
 * @packageDocumentation
 */
export { hasStats } from './driver.js';
export type {
  Driver,
  DriverStats,
  ExitReason,
  ExitStatus,
  JobInfo,
  JobStats,
  StopOptions,
} from './driver.js';
export { driverTags, IMAGE_HOST_TAG, RESERVED_TAG_PREFIX } from './driver-tags.js';
export { describeExit, DriverJobTable } from './driver-job-table.js';
export type { DriverJobEntry, DriverJobTableOptions } from './driver-job-table.js';
export { jobEnv, validateJobSpec } from './job-spec.js';
export type { JobEnvInput, JobSpec } from './job-spec.js';
export {
  checkReadOptions,
  DEFAULT_LOG_MAX_BYTES,
  DEFAULT_LOG_MAX_LINE_BYTES,
  DEFAULT_LOG_MAX_LINES,
  LogBuffer,
} from './log-buffer.js';
export type { LogBufferOptions, LogLine, LogReadOptions, LogStream } from './log-buffer.js';
export { ProcessDriver } from './process-driver.js';
export type { ProcessDriverEvents, ProcessDriverOptions } from './process-driver.js';
export { HostAgent, serviceName } from './host-agent.js';
export type { HostAgentEvents, HostAgentOptions } from './host-agent.js';
export {
  DEFAULT_RETAIN_ENDED_BYTES,
  DEFAULT_RETAIN_ENDED_JOBS,
  DEFAULT_RETAIN_ENDED_LINES,
  DEFAULT_RETAIN_ENDED_MS,
} from './ended-job.js';
export type { EndedJob } from './ended-job.js';
export type { DrainTarget, DrainWait } from './drain-wait.js';
export { ArtifactCache, DEFAULT_ARTIFACT_CACHE_MAX_BYTES } from './artifact-cache.js';
export { extractCachedSlug } from './extract-cached-slug.js';
export type { ExtractCachedSlugOptions } from './extract-cached-slug.js';
export type {
  ArtifactCacheOptions,
  ArtifactCacheUsage,
  ArtifactPin,
  SlugArtifact,
} from './artifact-cache.js';
export {
  BOOT_PROBE_FIRST_MS,
  HEALTH_CHECK_DEFAULTS,
  HealthMonitor,
  probe,
  resolveHealthCheck,
} from './health-check.js';
export type {
  HealthEvents,
  HealthMonitorOptions,
  ProbeResult,
  ResolvedHealthCheck,
} from './health-check.js';
export { PortAllocator } from './ports.js';
export type { PortAllocatorOptions, PortRange } from './ports.js';
export { HostError, HostErrorCodes } from './errors.js';
export type { HostErrorCode } from './errors.js';
