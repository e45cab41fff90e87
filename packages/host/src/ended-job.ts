/** What a {@link HostAgent} keeps of a job that ended (see `HostAgentOptions.retainEndedJobs`). */
export interface EndedJob {
  /** The job's id. */
  readonly id: string;
  /** Its app. */
  readonly app: string;
  /** The release it ran. */
  readonly release: string;
  /** Its process type (`web`). */
  readonly type: string;
  /** `down` when asked to stop, `crashed` when it ended by itself or could not start or go on. */
  readonly state: 'down' | 'crashed';
  /** Why it ended, as the agent reported it (`exited with code 3`, `could not start: ...`). */
  readonly message: string;
  /** When it ended, ms since the epoch. */
  readonly finishedAt: number;
  /** Its exit code, when it exited by itself. */
  readonly exitStatus?: number;
  /** The signal that ended it, when one did. */
  readonly signal?: string;
  /** How many of its last log lines are kept (readable with `HostAgent.logs`). */
  readonly lines: number;
}

/** Default `HostAgentOptions.retainEndedJobs`: how many ended jobs an agent remembers. */
export const DEFAULT_RETAIN_ENDED_JOBS = 100;
/** Default `HostAgentOptions.retainEndedLines`: how many last log lines of each. */
export const DEFAULT_RETAIN_ENDED_LINES = 100;
/** Default `HostAgentOptions.retainEndedBytes`: the most bytes of log text kept of each (64 KiB). */
export const DEFAULT_RETAIN_ENDED_BYTES = 64 * 1024;
/** Default `HostAgentOptions.retainEndedMs`: how long an ended job is remembered (1 hour). */
export const DEFAULT_RETAIN_ENDED_MS = 3_600_000;
