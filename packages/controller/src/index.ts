/**
 * The Flotilla platform logic as a library, without HTTP: apps, config vars, builds, releases,
 * formations, domains, artifacts, rolling deploys with automatic rollback, one-off runs, events
 * and hooks, over one `Store`.
 *
 * @packageDocumentation
 */
export { Controller } from './controller.js';
export type { CallOptions, ControllerOptions, ControllerState } from './controller.js';
export type { App, CreateAppInput } from './app.js';
export type {
  Build,
  BuildArtifact,
  BuilderKind,
  BuildOutputLine,
  BuildOutputOptions,
  BuildSource,
  BuildStatus,
  CreateBuildOptions,
} from './build.js';
export type {
  Builder,
  BuilderInput,
  BuilderResult,
  DockerImageBuild,
  ImageBuilder,
  ImageRemover,
  ImageBuildInput,
  ImageBuildResult,
  LineImageBuildOptions,
} from './builder.js';
export { ProcfileBuilder } from './procfile-builder.js';
export type { ProcfileBuilderOptions } from './procfile-builder.js';
export type { Release, ReleaseOptions, ReleaseSummary } from './release.js';
export type { Deployment, DeploymentStatus, DeployOptions, FailedJob } from './deployment.js';
export type { DeployOutcome, DeployOutcomeStatus } from './deploy-outcome.js';
export { DEFAULT_SIZE, DEFAULT_SIZES } from './formation.js';
export type { FormationEntry, FormationPatchEntry } from './formation.js';
export type { Dyno } from './dyno.js';
export type { Domain } from './domain.js';
export type { RouteEntry, RouteInput, RouteTableLike } from './route-table.js';
export type { ArtifactInfo, ArtifactStore } from './artifact-store.js';
export { DirectoryArtifactStore } from './directory-artifact-store.js';
export type { DirectoryArtifactStoreOptions } from './directory-artifact-store.js';
export type {
  OneOffHandle,
  OneOffRunner,
  OneOffSpec,
  RunExit,
  RunInfo,
  RunOptions,
  RunOutputLine,
} from './one-off.js';
export { DriverOneOffRunner } from './driver-one-off-runner.js';
export type { DriverOneOffRunnerOptions } from './driver-one-off-runner.js';
export type { JobLogSource, JobRef } from './job-logs.js';
export type {
  ControllerEvent,
  ControllerEventMap,
  ControllerEvents,
  ControllerEventType,
  EventStreamOptions,
} from './events.js';
export type { Hook, HookContexts, HookName, HookResult, Hooks } from './hooks.js';
export { ControllerError, ControllerErrorCodes } from './errors.js';
export type { ControllerErrorCode, ControllerErrorDetails } from './errors.js';
