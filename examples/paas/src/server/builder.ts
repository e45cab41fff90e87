import { build } from '@flotilla/buildpack';
import type { Builder } from '@flotilla/controller';
import type { Logger } from '@flotilla/core';

/**
 * The controller's {@link Builder} on `build` of `@flotilla/buildpack`, run as local processes.
 * The controller's `onOutput` takes chunks of output (newlines included) while `build` hands
 * over lines without their newline: each line is given its newline back here, so build output
 * reaches `git push` line by line, as it comes.
 */
export function buildpackBuilder(logger: Logger): Builder {
  return {
    build: (input) =>
      build({
        source: input.source,
        cacheDir: input.cacheDir,
        env: input.env,
        ...(input.buildpacks === undefined ? {} : { buildpacks: input.buildpacks }),
        ...(input.signal === undefined ? {} : { signal: input.signal }),
        onOutput: (line) => input.onOutput(`${line}\n`),
        logger,
      }),
  };
}
