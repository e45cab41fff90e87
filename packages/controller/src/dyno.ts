import type { JobState } from '@flotilla/cluster';

/** A running (or ending) job of an app: Heroku's dyno. */
export interface Dyno {
  /** The job id. */
  readonly id: string;
  /** `web.1`. */
  readonly name: string;
  readonly type: string;
  readonly index: number;
  /** The controller release it runs (`v5`). */
  readonly release: string;
  /** The cluster release id (`v5`, or `v5-r2` after restarts). */
  readonly deployment: string;
  readonly host: string;
  /** `pending`, `starting`, `up`, `stopping`, `down`, `crashed`. */
  readonly state: JobState;
  readonly port?: number;
  readonly startedAt?: number;
  readonly exitStatus?: number;
  readonly message?: string;
  readonly createdAt: number;
}
