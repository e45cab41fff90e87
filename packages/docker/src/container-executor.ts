import { realpath } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { silentLogger, type Logger } from '@flotilla/core';
import { DockerError, DockerErrorCodes, engineError } from './errors.js';
import { chownTree } from './internal/chown-tree.js';
import { Demuxer } from './internal/demux.js';
import { imageExists, statusOf } from './internal/engine.js';
import { givesAwayHost } from './internal/host-paths.js';
import { decodeExitCode } from './internal/entrypoint.js';

/**
 * One build step, as `@flotilla/buildpack`'s `ExecRequest` (matched structurally, so this
 * package does not depend on the buildpack package).
 */
export interface ContainerExecRequest {
  /** The program and its arguments; the program is an absolute path or found on `env.PATH`. */
  readonly argv: readonly string[];
  /** The working directory, absolute (inside one of `mounts`, usually). */
  readonly cwd: string;
  /** The whole environment of the step (the image's `PATH` and `LANG` fill in only what it lacks). */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute host directories the step reads or writes, each bind-mounted at the same path. */
  readonly mounts: readonly string[];
  /** Kills and removes the step's container; `exec` then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Kills the step's container after this many ms; `exec` resolves with `signal: 'SIGKILL'`. */
  readonly timeoutMs?: number;
  /** The step's output as it comes. */
  onOutput(stream: 'stdout' | 'stderr', chunk: Buffer): void;
}

/** How a step ended, as `@flotilla/buildpack`'s `ExecResult`. */
export interface ContainerExecResult {
  /** The exit status, or null when a signal killed it. */
  readonly code: number | null;
  /** The signal's name when one killed it, else null. */
  readonly signal: string | null;
}

/** The slice of dockerode the {@link ContainerExecutor} uses. */
export type ContainerExecutorDocker = Pick<Docker, 'createContainer' | 'getContainer' | 'getImage'>;

/** Options of {@link ContainerExecutor}. */
export interface ContainerExecutorOptions {
  readonly docker: ContainerExecutorDocker;
  /** The image steps run in: the stack image (`createStackImage`). Must be present. */
  readonly image: string;
  /**
   * The non-root user steps run as, `uid:gid`. Default `'1000:1000'` (the stack image's
   * `flotilla`). Each mount is given to this user (recursively, `lchown`) before a step runs,
   * so the step can write there; root on the host can still read, change and delete it all.
   */
  readonly user?: string;
  /** `'host'` (default: buildpacks download from the network) or `'none'`. */
  readonly network?: 'host' | 'none';
  /** A memory limit per step, MiB (no swap). None by default. */
  readonly memoryMiB?: number;
  /** Labels on every step's container (for your own sweeps). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly logger?: Logger;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** How long a finished step's output may take to drain, ms. */
const DRAIN_MS = 5000;

/**
 * A buildpack `BuildExecutor` that runs each build step in a fresh container of the stack
 * image, as a non-root user: `argv` runs directly (no shell) under a minimal init
 * (`docker-init`), in `cwd`, with the request's environment, each mount bind-mounted at the same
 * path, host networking. The container is removed when the step ends; on abort, timeout or
 * `close()` it is killed first, and everything the step started goes with it.
 *
 * Ownership: the mounted directories are chowned to the build user (uid 1000) before each
 * step, because the build user must write into the build, cache and home directories the host
 * made as root. Files the step creates are owned by uid 1000; the host (root) uses them as
 * they are.
 *
 * @example
 * ```ts
 * const stack = await createStackImage({ docker });
 * await using executor = new ContainerExecutor({ docker, image: stack.image });
 * const result = await build({ source: '/srv/src/demo', cacheDir: '/var/cache/demo', executor });
 * ```
 */
export class ContainerExecutor implements AsyncDisposable {
  /** Always `'container'`. */
  readonly name = 'container';
  readonly #docker: ContainerExecutorDocker;
  readonly #image: string;
  readonly #uid: number;
  readonly #gid: number;
  readonly #network: 'host' | 'none';
  readonly #memoryMiB: number | undefined;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #logger: Logger;
  readonly #running = new Map<string, () => Promise<void>>();
  #closed: Promise<void> | undefined;
  #imageChecked = false;

  constructor(options: ContainerExecutorOptions) {
    const bad = (path: string, why: string): never => {
      throw new DockerError(DockerErrorCodes.INVALID_OPTIONS, `${path}: ${why}`, { path });
    };
    if (typeof options !== 'object' || options === null) bad('options', 'pass an object');
    if (typeof options.docker !== 'object' || options.docker === null)
      bad('docker', 'pass a dockerode client');
    if (
      typeof options.image !== 'string' ||
      !/^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,511}$/.test(options.image)
    ) {
      bad('image', `${JSON.stringify(options.image)} is not an image reference`);
    }
    const user = options.user ?? '1000:1000';
    if (typeof user !== 'string' || !/^\d{1,10}:\d{1,10}$/.test(user)) {
      bad('user', `${JSON.stringify(user)} is not uid:gid in numbers`);
    }
    const [uid, gid] = user.split(':').map(Number) as [number, number];
    if (uid === 0) bad('user', 'build steps run as a non-root user: pick a uid other than 0');
    if (options.network !== undefined && options.network !== 'host' && options.network !== 'none') {
      bad('network', `${JSON.stringify(options.network)} is neither 'host' nor 'none'`);
    }
    const m = options.memoryMiB;
    if (m !== undefined && (!Number.isInteger(m) || m < 6 || m > 2 ** 30))
      bad('memoryMiB', `${String(m)} is not a whole number of MiB from 6`);
    this.#docker = options.docker;
    this.#image = options.image;
    this.#uid = uid;
    this.#gid = gid;
    this.#network = options.network ?? 'host';
    this.#memoryMiB = m;
    this.#labels = { ...options.labels };
    this.#logger = (options.logger ?? silentLogger).child({ executor: 'container' });
  }

  /**
   * Runs one step to its end in a fresh container. Rejects with the signal's reason when
   * aborted (once the container is gone), `FLOTILLA_DOCKER_INVALID_REQUEST` for a bad request,
   * `FLOTILLA_DOCKER_IMAGE_NOT_FOUND`, `FLOTILLA_DOCKER_MOUNT` when a mount cannot be given to
   * the build user, `FLOTILLA_DOCKER_ENGINE`, `FLOTILLA_DOCKER_CLOSED`.
   */
  async exec(req: ContainerExecRequest): Promise<ContainerExecResult> {
    this.#assertOpen();
    checkRequest(req);
    req.signal?.throwIfAborted();
    if (!this.#imageChecked) {
      if ((await imageExists(this.#docker, this.#image)) === undefined) {
        throw new DockerError(
          DockerErrorCodes.IMAGE_NOT_FOUND,
          `the build image ${this.#image} is not present in this dockerd, and images are never pulled: build it with createStackImage() or flotilla-stack build`,
          { path: this.#image },
        );
      }
      this.#imageChecked = true;
    }
    for (const mount of req.mounts) await checkMount(mount);
    for (const mount of req.mounts) {
      await chownTree(mount, this.#uid, this.#gid).catch((err: unknown) => {
        throw new DockerError(
          DockerErrorCodes.MOUNT,
          `cannot give ${mount} to uid ${this.#uid} for the build user: ${(err as Error).message} (the executor must run as root)`,
          { path: mount, cause: err },
        );
      });
    }
    req.signal?.throwIfAborted();
    const hostConfig: Record<string, unknown> = {
      Binds: req.mounts.map((m) => `${m}:${m}`),
      NetworkMode: this.#network,
      Init: true,
      LogConfig: { Type: 'none', Config: {} },
    };
    if (this.#memoryMiB !== undefined) {
      hostConfig.Memory = this.#memoryMiB * 1024 * 1024;
      hostConfig.MemorySwap = this.#memoryMiB * 1024 * 1024;
    }
    let container: Docker.Container;
    try {
      container = await this.#docker.createContainer({
        Image: this.#image,
        Entrypoint: [...req.argv],
        Cmd: [],
        WorkingDir: req.cwd,
        Env: Object.entries(req.env).map(([k, v]) => `${k}=${v}`),
        User: `${this.#uid}:${this.#gid}`,
        Labels: { ...this.#labels, 'flotilla.build-step': 'true' },
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        OpenStdin: false,
        HostConfig: hostConfig,
      });
    } catch (err) {
      throw engineError(`dockerd refused to create a container for ${req.argv[0] ?? ''}`, err);
    }
    let removed: Promise<void> | undefined;
    const kill = (): Promise<void> =>
      (removed ??= container.remove({ force: true, v: true }).then(
        () => undefined,
        (err: unknown) => {
          if (statusOf(err) !== 404)
            this.#logger.warn({ err, container: container.id }, 'cannot remove a step container');
        },
      ));
    this.#running.set(container.id, kill);
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => void kill();
    try {
      const stream = (await container.attach({
        stream: true,
        stdout: true,
        stderr: true,
      })) as unknown as Readable;
      const demux = new Demuxer((name, bytes) => req.onOutput(name, bytes));
      const drained = new Promise<void>((resolve) => {
        stream.on('data', (chunk: Buffer) => demux.write(chunk));
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', () => resolve());
      });
      req.signal?.addEventListener('abort', onAbort, { once: true });
      if (req.signal?.aborted === true) void kill();
      try {
        await container.start();
      } catch (err) {
        req.signal?.throwIfAborted();
        throw engineError(`cannot start ${req.argv[0] ?? ''} in ${req.cwd}`, err);
      }
      if (req.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          void container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        }, req.timeoutMs);
      }
      let exitCode: number | undefined;
      try {
        exitCode = ((await container.wait()) as { StatusCode: number }).StatusCode;
      } catch (err) {
        req.signal?.throwIfAborted();
        if (this.#closed !== undefined) throw closedError();
        throw engineError(`lost the container of ${req.argv[0] ?? ''}`, err);
      }
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        drained,
        new Promise<void>((r) => (drainTimer = setTimeout(r, DRAIN_MS))),
      ]);
      clearTimeout(drainTimer);
      stream.destroy();
      await kill();
      req.signal?.throwIfAborted();
      if (this.#closed !== undefined && removed !== undefined && exitCode === 137 && !timedOut)
        throw closedError();
      if (timedOut) return { code: null, signal: 'SIGKILL' };
      return decodeExitCode(exitCode);
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      await kill();
      this.#running.delete(container.id);
    }
  }

  /** Kills and removes every running step's container; later `exec` calls fail. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.all([...this.#running.values()].map((kill) => kill()));
    })();
    return this.#closed;
  }

  /** Same as {@link ContainerExecutor.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #assertOpen(): void {
    if (this.#closed !== undefined) throw closedError();
  }
}

function closedError(): DockerError {
  return new DockerError(DockerErrorCodes.CLOSED, 'the container executor was closed');
}

/**
 * Refuses a mount that would give the build user the host's own files: every mount is chowned
 * to it, so `/etc`, `/usr/lib` or `/tmp` (or a link to one) must never be one.
 */
async function checkMount(mount: string): Promise<void> {
  const system = givesAwayHost(mount);
  if (system !== undefined) throw refused(mount, mount, system);
  let real: string;
  try {
    real = await realpath(mount);
  } catch (err) {
    throw new DockerError(
      DockerErrorCodes.MOUNT,
      `exec: mount ${mount} cannot be used: ${(err as Error).message}`,
      { path: mount, cause: err },
    );
  }
  const target = givesAwayHost(real);
  if (target !== undefined) throw refused(mount, real, target);
}

function refused(mount: string, path: string, dir: string): DockerError {
  return new DockerError(
    DockerErrorCodes.INVALID_REQUEST,
    `exec: mount ${mount}${path === mount ? '' : ` (${path})`} would give the build user ${dir}: mount a build's own directory`,
    { path: mount },
  );
}

function checkRequest(req: ContainerExecRequest): void {
  const bad = (path: string, why: string): never => {
    throw new DockerError(DockerErrorCodes.INVALID_REQUEST, `exec: ${path} ${why}`, { path });
  };
  if (typeof req !== 'object' || req === null) bad('request', 'must be an object');
  if (!Array.isArray(req.argv) || req.argv.length === 0) bad('argv', 'must name a program');
  for (const a of req.argv)
    if (typeof a !== 'string' || a.includes('\0')) bad('argv', 'holds a non-string or a NUL byte');
  if (req.argv[0] === '') bad('argv', 'names an empty program');
  const absolute = (p: unknown): boolean =>
    typeof p === 'string' &&
    p.startsWith('/') &&
    !p.includes('\0') &&
    !p.includes(':') &&
    !p.split('/').includes('..');
  if (!absolute(req.cwd))
    bad('cwd', `${JSON.stringify(req.cwd)} is not an absolute path (without .. or :)`);
  if (!Array.isArray(req.mounts)) bad('mounts', 'must be an array of absolute directories');
  for (const m of req.mounts) {
    if (!absolute(m) || m === '/')
      bad(
        'mounts',
        `${JSON.stringify(m)} is not an absolute directory other than / (without .. or :)`,
      );
  }
  if (typeof req.env !== 'object' || req.env === null) bad('env', 'must be a record of strings');
  for (const [k, v] of Object.entries(req.env)) {
    if (!ENV_NAME.test(k)) bad(`env.${k}`, 'is not a variable name');
    if (typeof v !== 'string' || v.includes('\0')) bad(`env.${k}`, 'must be a string without NUL');
  }
  const t = req.timeoutMs;
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t <= 0))
    bad('timeoutMs', 'must be a positive number of ms');
  if (typeof req.onOutput !== 'function') bad('onOutput', 'must be a function');
}
