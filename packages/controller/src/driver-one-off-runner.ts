import type { OneOffHandle, OneOffRunner, OneOffSpec } from './one-off.js';
import { ControllerError, ControllerErrorCodes } from './errors.js';
import type { Driver } from '@flotilla/host';
import type { ArtifactCache } from '@flotilla/host';
import type { Logger } from '@flotilla/core';

/** Options of {@link DriverOneOffRunner}. */
export interface DriverOneOffRunnerOptions {
  /** The driver that runs the jobs (the embedded PaaS's `ProcessDriver`). */
  readonly driver: Driver;
  /** Where slugs are fetched and verified (shared with the host agent to fetch each once). */
  readonly artifacts: ArtifactCache;
  /** Where each job's slug is extracted (`<workDir>/<job id>`), removed when the job ends. */
  readonly workDir: string;
  /** Between SIGTERM and SIGKILL when a run is stopped, ms (default 10,000). */
  readonly stopGraceMs?: number;
  readonly logger?: Logger;
}

/**
 * A {@link OneOffRunner} on a host `Driver`: fetches and verifies the release's slug, extracts
 * it, starts the command with the release's environment, streams its output, waits for its
 * exit, then removes the job and its directory. One-off jobs are not in any formation, so the
 * scheduler never restarts them, and they hold no port.
 */
export class DriverOneOffRunner implements OneOffRunner {
  readonly #options: DriverOneOffRunnerOptions;

  constructor(options: DriverOneOffRunnerOptions) {
    this.#options = options;
  }

  async start(
    spec: OneOffSpec,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<OneOffHandle> {
    void spec;
    void options;
    void this.#options;
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      'DriverOneOffRunner is not implemented yet',
    );
  }
}
