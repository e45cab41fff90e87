import type { Resources } from '@flotilla/cluster';

/** One process type of an app's formation. */
export interface FormationEntry {
  readonly type: string;
  /** Jobs to run. */
  readonly quantity: number;
  /** A size name from the controller's {@link ControllerOptions.sizes}. */
  readonly size: string;
  /** What that size reserves per job. */
  readonly resources: Resources;
  /** The command, from the live (or newest built) release. */
  readonly command: string | undefined;
}

/** A change to one process type: leave a field out to keep it. */
export interface FormationPatchEntry {
  readonly quantity?: number;
  readonly size?: string;
}

/** The default sizes: Heroku-like names for what a job reserves. */
export const DEFAULT_SIZES: Readonly<Record<string, Resources>> = {
  small: { cpu: 250, memory: 256 },
  standard: { cpu: 500, memory: 512 },
  large: { cpu: 1000, memory: 1024 },
  xlarge: { cpu: 2000, memory: 2048 },
};

/** The size of a process type that was never given one. */
export const DEFAULT_SIZE = 'standard';
