// Running one buildpack script through the executor: output into the log, stdout kept when
// the caller needs it (detect's name, release's YAML), aborts and timeouts told apart.
import type { BuildExecutor, ExecResult } from '../executor.js';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import type { OutputLog } from './output.js';

/** What every step of one build shares. */
export interface StepContext {
  readonly executor: BuildExecutor;
  readonly env: Readonly<Record<string, string>>;
  readonly mounts: readonly string[];
  readonly cwd: string;
  readonly log: OutputLog;
  /** The build's signal: the caller's, or the build timeout's. */
  readonly signal: AbortSignal;
  /** The caller's signal alone. */
  readonly userSignal: AbortSignal | undefined;
  /** Fires when the build's timeout is reached. */
  readonly timeoutSignal: AbortSignal | undefined;
  readonly timeoutMs: number | undefined;
}

/** How a step ended, with its stdout when it was kept. */
export interface StepResult extends ExecResult {
  readonly stdout: string;
}

/**
 * Runs `script args` after sourcing `exports` (the `export` files of the buildpacks that ran
 * before), as the buildpack API has it.
 */
export async function runStep(
  ctx: StepContext,
  script: string,
  args: readonly string[],
  options: {
    readonly exports: readonly string[];
    /** Keep stdout (up to this many bytes) instead of logging it. */
    readonly captureStdout?: number;
    readonly buildpack: string;
  },
): Promise<StepResult> {
  const argv =
    options.exports.length === 0
      ? [script, ...args]
      : [
          'bash',
          '-c',
          'n=$1; shift; while [ "$n" -gt 0 ]; do . "$1"; shift; n=$((n - 1)); done; exec "$@"',
          'flotilla-step',
          String(options.exports.length),
          ...options.exports,
          script,
          ...args,
        ];
  const kept: Buffer[] = [];
  let keptBytes = 0;
  const capture = options.captureStdout;
  try {
    const result = await ctx.executor.exec({
      argv,
      cwd: ctx.cwd,
      env: ctx.env,
      mounts: ctx.mounts,
      signal: ctx.signal,
      onOutput(stream, chunk) {
        if (stream === 'stdout' && capture !== undefined) {
          if (keptBytes < capture) kept.push(chunk.subarray(0, capture - keptBytes));
          keptBytes += chunk.byteLength;
        } else {
          ctx.log.chunk(stream, chunk);
        }
      },
    });
    ctx.log.flush();
    checkInterrupted(ctx, options.buildpack);
    return { ...result, stdout: Buffer.concat(kept).toString('utf8') };
  } catch (err) {
    ctx.log.flush();
    checkInterrupted(ctx, options.buildpack);
    if (err instanceof BuildpackError) throw withOutput(err, ctx.log, options.buildpack);
    throw new BuildpackError(
      BuildpackErrorCodes.EXEC_FAILED,
      `the ${ctx.executor.name} executor could not run ${script}: ${(err as Error).message}`,
      { buildpack: options.buildpack, output: ctx.log.text(), cause: err },
    );
  }
}

/** Throws the caller's abort reason, or `FLOTILLA_BUILDPACK_TIMEOUT`, if either happened. */
export function checkInterrupted(ctx: StepContext, buildpack?: string): void {
  if (ctx.userSignal?.aborted === true) throw ctx.userSignal.reason;
  if (ctx.timeoutSignal?.aborted === true) {
    throw new BuildpackError(
      BuildpackErrorCodes.TIMEOUT,
      `the build ran longer than ${ctx.timeoutMs} ms and was stopped with everything it started; raise timeoutMs or make the build faster`,
      { output: ctx.log.text(), ...(buildpack === undefined ? {} : { buildpack }) },
    );
  }
}

function withOutput(err: BuildpackError, log: OutputLog, buildpack: string): BuildpackError {
  if (err.output !== '') return err;
  return new BuildpackError(err.code, err.message, {
    buildpack: err.buildpack ?? buildpack,
    output: log.text(),
    cause: err.cause,
    retryable: err.retryable,
  });
}
