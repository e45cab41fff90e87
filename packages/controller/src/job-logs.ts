/** A job whose logs are asked for. */
export interface JobRef {
  readonly id: string;
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly hostId: string;
}

/**
 * Where the controller finds a job's last log lines, to say why a deploy failed. The reference
 * PaaS plugs in its log aggregation. Without one, failure reports carry the agents' messages
 * and exit statuses only.
 */
export interface JobLogSource {
  /** The last `lines` lines of the job's output (fewer, or none, when not known). */
  tail(job: JobRef, lines: number, options: { readonly signal?: AbortSignal }): Promise<string[]>;
}
