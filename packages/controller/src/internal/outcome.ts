import type { Build } from '../build.js';
import type { DeployOutcome } from '../deploy-outcome.js';
import type { Deployment } from '../deployment.js';

/** Answers whether an ended build went live, from its record and its deployment's. */
export function deployOutcome(
  build: Build,
  deployment: Deployment | undefined,
  liveRelease: string | undefined,
): DeployOutcome {
  const base = { build, release: build.release, deployment, liveRelease };
  if (build.status !== 'succeeded')
    return { ...base, status: 'build-failed', reason: build.error ?? 'the build failed' };
  if (build.release === undefined)
    return {
      ...base,
      status: 'not-deployed',
      reason: 'the build was not released (deploy: false)',
    };
  if (deployment?.status === 'succeeded') return { ...base, status: 'live', reason: undefined };
  const why =
    deployment?.reason ??
    build.deployError ??
    (deployment === undefined
      ? `the deploy of ${build.release} did not start`
      : `the deploy of ${build.release} did not finish (${deployment.status})`);
  return { ...base, status: 'deploy-failed', reason: why };
}
