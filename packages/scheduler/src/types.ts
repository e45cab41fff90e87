import type {
  Formation,
  HostState,
  JobState,
  ProcessSpec,
  Resources,
  StopReason,
} from '@flotilla/cluster';

// The records the core reads are the cluster's; the pure core uses them under these names.
export type { Formation, HostState, JobState, ProcessSpec, Resources, StopReason };

/** Placement strategies: `spread` (even across zones and hosts) or `binpack` (fewest hosts). */
export type Strategy = 'spread' | 'binpack';

/** A host in a {@link ClusterSnapshot}. */
export interface HostSnapshot {
  readonly id: string;
  /** Labels that constraints match and spreading reads (`zone`, `disk`...). */
  readonly tags?: Readonly<Record<string, string>>;
  /** What the host offers to jobs. */
  readonly capacity: Resources;
  readonly state: HostState;
  /**
   * A `draining` host whose drain deadline has passed: its jobs are stopped whether or not
   * their replacements are up (reason `drain-deadline`). Default false: a drained job stops
   * only once its replacement is up.
   */
  readonly drainForced?: boolean;
}

/** A job in a {@link ClusterSnapshot}: one running instance of a process type. */
export interface JobSnapshot {
  readonly id: string;
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly hostId: string;
  readonly resources: Resources;
  readonly state: JobState;
  /** When it was created (ms); surplus jobs stop newest first. Falls back on id order. */
  readonly createdAt?: number;
}

/** Everything the pure core looks at: hosts, the jobs that exist now, and the formations. */
export interface ClusterSnapshot {
  readonly hosts: readonly HostSnapshot[];
  readonly jobs: readonly JobSnapshot[];
  readonly formations: readonly Formation[];
}

/** One job to start. */
export interface PlannedStart {
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly hostId: string;
  readonly resources: Resources;
}

/** One job to stop. */
export interface PlannedStop {
  readonly jobId: string;
  readonly reason: StopReason;
}

/** Why jobs could not be placed. */
export type UnplacedReason =
  /** No up host has every tag the constraints ask for. */
  | 'no-matching-host'
  /** Eligible hosts exist, but none has room for the job. */
  | 'no-capacity'
  /** The process type asks for more jobs than the planner's `maxJobsPerType`: none are placed. */
  | 'over-limit';

/** Jobs of one process type that could not be placed, and why. */
export interface Unplaced {
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly count: number;
  readonly reason: UnplacedReason;
  /** A sentence for humans: what was needed and what was found. */
  readonly message: string;
}

/** The outcome of {@link schedule}: what to start, what to stop, what could not be placed. */
export interface Plan {
  readonly start: readonly PlannedStart[];
  readonly stop: readonly PlannedStop[];
  readonly unplaced: readonly Unplaced[];
}
