import { tmpdir } from 'node:os';
import type { Logger } from '@flotilla/core';
import { LocalExecutor } from '@flotilla/buildpack';

/**
 * Ends the build steps a server SIGKILLed mid-build left running (an `npm install` or a build
 * script outlives its builder: nothing is left to kill it). `LocalExecutor` kills the step
 * cgroups of dead builders of this host when it makes a step cgroup and, where no cgroup can be
 * made (cgroup v1 without a usable freezer, not root), the process groups that dead builders'
 * steps recorded (its `stepsDir`): so one no-op step run at start does it, before the restarted
 * server builds anything. Never throws: a failure is logged.
 */
export async function sweepDeadBuildSteps(logger: Logger): Promise<void> {
  const executor = new LocalExecutor({ logger });
  try {
    const res = await executor.exec({
      argv: ['true'],
      cwd: tmpdir(),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      mounts: [],
      timeoutMs: 30_000,
      onOutput: () => undefined,
    });
    if (res.code !== 0) logger.warn({ res }, 'the build step sweep did not run');
  } catch (err) {
    logger.warn({ err }, 'the build step sweep did not run');
  } finally {
    await executor.close().catch(() => undefined);
  }
}
