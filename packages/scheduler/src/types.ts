/** Placement strategies: `spread` (even across zones and hosts) or `binpack` (fewest hosts). */
export type Strategy = 'spread' | 'binpack';

/** CPU in millicores and memory in MiB. */
export interface Resources {
  /** Millicores: 1000 is one core. */
  readonly cpu: number;
  /** MiB. */
  readonly memory: number;
}

/** A host's state as the scheduler sees it. Only `up` hosts get new jobs. */
export type HostState = 'up' | 'draining' | 'down';

/** A host in a {@link ClusterSnapshot}. */
export interface HostSnapshot {
  readonly id: string;
  /** Labels that constraints match and spreading reads (`zone`, `disk`...). */
  readonly tags?: Readonly<Record<string, string>>;
  /** What the host offers to jobs. */
  readonly capacity: Resources;
  readonly state: HostState;
}

/**
 * A job's lifecycle: `pending -> starting -> up -> stopping -> down | crashed`. Pending,
 * starting and up jobs count towards their formation; every job but a down or crashed one
 * holds its resources on its host.
 */
export type JobState = 'pending' | 'starting' | 'up' | 'stopping' | 'down' | 'crashed';

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

/** How many of one process type to run, and where. */
export interface ProcessSpec {
  /** Jobs to run (per eligible host when `omni`). */
  readonly count: number;
  readonly resources: Resources;
  /** Host tags that must all match for a host to be eligible. */
  readonly constraints?: Readonly<Record<string, string>>;
  /** Run `count` jobs on every eligible host (a log shipper, a router) instead of `count` in all. */
  readonly omni?: boolean;
}

/** The declared processes of one release of an app. */
export interface Formation {
  readonly app: string;
  readonly release: string;
  readonly processes: Readonly<Record<string, ProcessSpec>>;
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

/** Why a job is to stop. */
export type StopReason =
  /** More jobs than the formation wants (stopped newest first). */
  | 'scaled-down'
  /** No formation declares its app, release and type any more (an old release, say). */
  | 'no-formation'
  /** Its host is down: the job is lost; a replacement is planned elsewhere. */
  | 'host-down'
  /** Its host is draining: a replacement is planned elsewhere. */
  | 'host-draining'
  /** Its host no longer matches the process type's constraints. */
  | 'constraint-mismatch'
  /** Its host is not in the snapshot. */
  | 'host-unknown';

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
  | 'no-capacity';

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
