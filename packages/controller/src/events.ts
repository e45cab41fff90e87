import type { JobState } from '@flotilla/cluster';
import type { Build, BuildOutputLine } from './build.js';
import type { Deployment } from './deployment.js';
import type { ReleaseSummary } from './release.js';

/**
 * Every event a {@link Controller} emits, by type: the payload of each is the
 * {@link ControllerEvent} of that `type`. Events are of this controller's own work, plus
 * `job.state` for every job of every app it sees change.
 */
export interface ControllerEventMap {
  'app.created': { readonly app: string };
  'app.destroyed': { readonly app: string };
  /** Config var names only, never values. */
  'config.changed': {
    readonly app: string;
    readonly set: readonly string[];
    readonly unset: readonly string[];
  };
  'build.started': { readonly app: string; readonly build: Build };
  'build.output': {
    readonly app: string;
    readonly buildId: string;
    readonly line: BuildOutputLine;
  };
  'build.finished': { readonly app: string; readonly build: Build };
  /** The release without its config values: {@link ReleaseSummary} names the vars only. */
  'release.created': { readonly app: string; readonly release: ReleaseSummary };
  'deploy.started': { readonly app: string; readonly deployment: Deployment };
  /** A step of a rolling deploy, for humans (`web: 2 of 3 new jobs ready`). */
  'deploy.progress': {
    readonly app: string;
    readonly deploymentId: string;
    readonly message: string;
  };
  'deploy.finished': { readonly app: string; readonly deployment: Deployment };
  /** A job's derived state changed (`pending -> starting -> up`...). */
  'job.state': {
    readonly app: string;
    readonly jobId: string;
    /** The process type (`web`). */
    readonly processType: string;
    /** Its number within the type: the dyno is `<processType>.<index>` (`web.1`). */
    readonly index: number;
    readonly release: string;
    readonly host: string;
    readonly state: JobState;
    readonly previous: JobState | undefined;
  };
  /** A formation changed (quantities or sizes). */
  scale: {
    readonly app: string;
    readonly processes: Readonly<
      Record<string, { readonly quantity: number; readonly size: string }>
    >;
  };
  'domain.added': { readonly app: string; readonly hostname: string };
  'domain.removed': { readonly app: string; readonly hostname: string };
  'run.started': { readonly app: string; readonly jobId: string; readonly command: string };
  'run.finished': { readonly app: string; readonly jobId: string; readonly code: number | null };
}

/** The type of an event. */
export type ControllerEventType = keyof ControllerEventMap;

/** One event, as the {@link Controller.events} stream yields it: its type, when, and its payload. */
export type ControllerEvent = {
  [K in ControllerEventType]: { readonly type: K; readonly time: number } & ControllerEventMap[K];
}[ControllerEventType];

/** The eventemitter3 map of a {@link Controller}: one listener signature per event type, and `error`. */
export type ControllerEvents = {
  [K in ControllerEventType]: (event: Extract<ControllerEvent, { type: K }>) => void;
} & {
  /** A background failure that belongs to no call (a watch that failed, a hook that threw after its step). */
  error: (error: Error) => void;
};

/** Options of {@link Controller.events}. */
export interface EventStreamOptions {
  /** Only events of this app. */
  readonly app?: string;
  /** Only these types. */
  readonly types?: readonly ControllerEventType[];
  /**
   * Most events held for a consumer that does not read (default 10,000); one more ends the
   * stream with `FLOTILLA_CONTROLLER_EVENT_BACKLOG`, so that a stalled consumer never grows
   * memory without bound.
   */
  readonly maxBacklog?: number;
  /** Ends the stream. */
  readonly signal?: AbortSignal;
}
