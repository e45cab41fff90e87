import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { OneOffHandle, OneOffSpec, RunOptions } from '../one-off.js';
import type { Release } from '../release.js';
import { compact } from './check.js';
import type { FormationService } from './formations.js';
import { checkConfigPatch, invalid, newId, releaseNumber, show } from './names.js';
import type { ControllerParts } from './parts.js';

/**
 * Starts a one-off job (`Controller.run`): checks the command, env, size and timeout, finds the
 * release (given, else live, else newest built) and its slug, and hands the job to the
 * configured `OneOffRunner`; `run.started` and `run.finished` are emitted.
 */
export async function startRun(
  p: ControllerParts,
  formations: FormationService,
  app: string,
  options: RunOptions,
): Promise<OneOffHandle> {
  if (typeof options !== 'object' || options === null)
    throw invalid('options', 'run takes { command, ... }', app);
  const { command } = options;
  if (
    typeof command !== 'string' ||
    command.trim() === '' ||
    command.length > 64 * 1024 ||
    command.includes('\0')
  )
    throw invalid(
      'command',
      'the command must be a non-empty string of at most 64 KiB without NUL',
      app,
    );
  const env = options.env === undefined ? {} : checkConfigPatch(options.env);
  if (Object.values(env).some((v) => v === null))
    throw invalid('env', 'env values must be strings', app);
  const size = options.size ?? p.o.defaultSize;
  if (!Object.hasOwn(p.o.sizes, size))
    throw invalid(
      'size',
      `${show(size)} is not a size: use ${Object.keys(p.o.sizes).join(', ')}`,
      app,
    );
  if (
    options.timeoutMs !== undefined &&
    (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1)
  )
    throw invalid(
      'timeoutMs',
      `timeoutMs must be a whole number of ms above 0, got ${show(options.timeoutMs)}`,
      app,
    );
  const runner = p.o.runner;
  if (runner === undefined)
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      'the controller has no one-off runner: configure one (DriverOneOffRunner)',
      { app },
    );
  const record = await p.repo.requireApp(app, options);
  let release: Release | undefined;
  if (options.release !== undefined) {
    const n = releaseNumber(options.release);
    release = await p.repo.release(app, n, options);
    if (release === undefined) throw releaseNotFound(app, n);
  } else release = await formations.release(record, options);
  if (release?.build === undefined)
    throw new ControllerError(
      ControllerErrorCodes.NO_BUILD,
      `app ${app} has no build to run with: push one first`,
      { app },
    );
  const build = await p.repo.build(app, release.build, options);
  if (build?.artifact === undefined)
    throw new ControllerError(
      ControllerErrorCodes.NO_BUILD,
      `build ${release.build} of ${app} has no artifact`,
      { app },
    );
  await p.deployer.requireArtifact(build);
  const artifact = p.deployer.clusterRecord(release, build, release.id).artifact;
  const jobId = `${app}.run.${newId('r').slice(2)}`;
  const handle = await runner.start(
    compact<OneOffSpec>({
      id: jobId,
      app,
      release: release.id,
      type: 'run',
      command,
      artifact,
      env: { ...release.config, ...(env as Record<string, string>) },
      memoryMiB: p.deployer.resources(size).memory,
      timeoutMs: options.timeoutMs,
    }),
    options.signal === undefined ? {} : { signal: options.signal },
  );
  p.emit('run.started', { app, jobId, command });
  const exit = handle.exit.then((e) => {
    p.emit('run.finished', { app, jobId, code: e.code });
    return e;
  });
  return { id: handle.id, output: handle.output, exit, stop: () => handle.stop() };
}

function releaseNotFound(app: string, n: number): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.RELEASE_NOT_FOUND,
    `app ${app} has no release v${n}: check the number against the list of its releases`,
    { app },
  );
}
