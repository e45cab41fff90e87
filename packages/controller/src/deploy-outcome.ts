import type { Build } from './build.js';
import type { Deployment } from './deployment.js';

/**
 * Where a push ended:
 * - `live`: built, released, and its deploy went live;
 * - `build-failed`: the build failed (nothing was released);
 * - `deploy-failed`: built and released, and the deploy failed (rolled back: the release before
 *   it keeps serving) or never started;
 * - `not-deployed`: built, and no deploy was asked for (`deploy: false`) or no release made.
 */
export type DeployOutcomeStatus = 'live' | 'build-failed' | 'deploy-failed' | 'not-deployed';

/** What {@link Controller.waitForDeploy} answers: did this build go live, and if not, why. */
export interface DeployOutcome {
  readonly status: DeployOutcomeStatus;
  /** The build, ended. */
  readonly build: Build;
  /** The release it made (`v7`), if any. */
  readonly release: string | undefined;
  /** The deployment of that release it started, finished, if one started: its failed jobs say what crashed. */
  readonly deployment: Deployment | undefined;
  /** Why it did not go live, for humans; undefined when `live`. */
  readonly reason: string | undefined;
  /** The release serving the app now (after a failed deploy: the one still serving), if any. */
  readonly liveRelease: string | undefined;
}
