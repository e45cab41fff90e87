/** Where a deployment is. `rolled-back`: it failed and the previous release kept (or got back) its jobs. */
export type DeploymentStatus = 'running' | 'succeeded' | 'failed' | 'rolled-back';

/** A job of a failed deploy, as the failure report gives it. */
export interface FailedJob {
  readonly id: string;
  readonly type: string;
  readonly host: string;
  /** `crashed`, or `starting` when it never became ready in time. */
  readonly state: string;
  readonly exitStatus?: number;
  readonly signal?: string;
  /** The agent's message (`exited with code 1`, a failed health check). */
  readonly message?: string;
  /** Its last log lines, when a {@link JobLogSource} is configured. */
  readonly logs: readonly string[];
}

/** A deploy of a release: a rolling replacement of the app's jobs, recorded. */
export interface Deployment {
  /** `d-` and 12 hex digits. */
  readonly id: string;
  readonly app: string;
  /** The release going live (`v7`). */
  readonly release: string;
  /** The release it replaces, if any. */
  readonly from: string | undefined;
  /** What the deploy is for: a new release, a restart, a size change. */
  readonly kind: 'release' | 'restart' | 'scale';
  readonly status: DeploymentStatus;
  /** Why it failed, for humans. */
  readonly reason?: string;
  /** The new jobs that failed it. */
  readonly failedJobs?: readonly FailedJob[];
  readonly createdAt: number;
  readonly finishedAt?: number;
  /** The controller instance running it. */
  readonly owner: string;
}

/** How a deploy rolls. */
export interface DeployOptions {
  /** New jobs started per step, per process type (default 1). */
  readonly batchSize?: number;
  /**
   * Extra jobs over the formation's count while rolling (default 1, Kubernetes' maxSurge):
   * with 0, an old job is stopped before each new one starts (fewer resources, less capacity).
   */
  readonly surge?: number;
  /** How long every new job of a step has to become ready, ms (default 60,000). */
  readonly readyTimeoutMs?: number;
  /**
   * How long each new job must stay up (and ready, when health checked) before it counts, ms
   * (default 0: counted once up). A job that crashes meanwhile fails the deploy, which rolls
   * back: a process that binds its port and dies a moment later does not replace one that
   * serves. Nomad's `min_healthy_time`, Kubernetes' `minReadySeconds`. Below `readyTimeoutMs`.
   */
  readonly minHealthyMs?: number;
  /** How long the old jobs of a step have to be gone, ms (default 120,000). */
  readonly stopTimeoutMs?: number;
  /** What to do when another deploy of the app runs: wait for it (default) or refuse with `FLOTILLA_CONTROLLER_DEPLOY_IN_PROGRESS`. */
  readonly onBusy?: 'wait' | 'refuse';
  /** Gives up waiting (the deploy is rolled back if it started). */
  readonly signal?: AbortSignal;
}
