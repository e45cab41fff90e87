import { isValidId } from '@flotilla/cluster';
import { HostError, HostErrorCodes } from './errors.js';
import { describe } from './internal/validate.js';

/**
 * What a driver runs: one job, an instance of a release's process type. The agent builds it
 * from the job's record and its release; {@link jobEnv} builds its `env`.
 */
export interface JobSpec {
  /** The job id, as in the cluster: 1 to 200 characters of `A-Z a-z 0-9 . _ - @ : +`. */
  readonly id: string;
  readonly app: string;
  readonly release: string;
  /** The process type (`web`, `worker`). */
  readonly processType: string;
  /** The instance number within the process type, from 1 (the `1` of `web.1`). */
  readonly index: number;
  /** The Procfile command, run by `bash -c` after the slug's `.profile.d/*.sh` and `.profile`. */
  readonly command: string;
  /**
   * The directory to run in: the job's extracted slug (also its `HOME`). Absolute. For an
   * {@link JobSpec.image} job it is the agent's scratch directory for the job (empty), which a
   * driver may ignore.
   */
  readonly cwd: string;
  /**
   * A local container image to run the command in instead of a slug (a release whose artifact
   * is an image). Only drivers whose {@link Driver.runsImages} is true accept it; others refuse
   * the spec with `FLOTILLA_HOST_INVALID_SPEC`.
   */
  readonly image?: string;
  /** The environment the command sees, already merged ({@link jobEnv}). */
  readonly env: Readonly<Record<string, string>>;
  /** The memory limit in MiB; none when absent. */
  readonly memoryMiB?: number;
  /** The CPU share in thousandths of a core (the job's `cpu` resource); none when absent. */
  readonly cpuMillis?: number;
  /** Between SIGTERM and SIGKILL when the job is stopped, ms; the driver's default when absent. */
  readonly stopGraceMs?: number;
}

/** What {@link jobEnv} merges. */
export interface JobEnvInput {
  readonly jobId: string;
  readonly app: string;
  readonly release: string;
  readonly processType: string;
  readonly index: number;
  /** The port the job listens on, set as `PORT`. */
  readonly port?: number;
  /** The release's config vars. */
  readonly config?: Readonly<Record<string, string>>;
}

/**
 * The environment of a job, as on Heroku: the release's config vars, then `PORT`,
 * `DYNO=<type>.<index>`, `FLOTILLA_JOB_ID`, `FLOTILLA_APP` and `FLOTILLA_RELEASE`, which a
 * config var cannot override.
 *
 * @example
 * ```ts
 * const env = jobEnv({ jobId, app: 'demo', release: 'v3', processType: 'web', index: 1,
 *   port: 5000, config: release.config });
 * // { ...config, PORT: '5000', DYNO: 'web.1', FLOTILLA_JOB_ID: jobId, ... }
 * ```
 */
export function jobEnv(input: JobEnvInput): Record<string, string> {
  const env: Record<string, string> = { ...input.config };
  if (input.port !== undefined) env.PORT = String(input.port);
  env.DYNO = `${input.processType}.${input.index}`;
  env.FLOTILLA_JOB_ID = input.jobId;
  env.FLOTILLA_APP = input.app;
  env.FLOTILLA_RELEASE = input.release;
  return env;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The command's most bytes (UTF-8). */
const MAX_COMMAND = 64 * 1024;
/** The environment's most bytes (UTF-8, as `NAME=value\0` strings): well under Linux's ARG_MAX. */
const MAX_ENV_BYTES = 1024 * 1024;
/** Linux's MAX_ARG_STRLEN: one `NAME=value` string longer than this fails exec with E2BIG. */
const MAX_ENV_VAR_BYTES = 128 * 1024 - 1;

function invalid(path: string, why: string, jobId?: string): never {
  throw new HostError(HostErrorCodes.INVALID_SPEC, `job spec ${path}: ${why}`, {
    path,
    ...(jobId === undefined ? {} : { jobId }),
  });
}

/**
 * Checks a job spec and returns a copy of it, or throws `FLOTILLA_HOST_INVALID_SPEC` naming the
 * field. Drivers call it in `start`.
 */
export function validateJobSpec(spec: unknown): JobSpec {
  if (typeof spec !== 'object' || spec === null) invalid('spec', 'it must be an object');
  // Ids follow the cluster's rule (`isValidId`): a job id is also a directory name here.
  const o = spec as Record<string, unknown>;
  if (!isValidId(o.id)) {
    invalid(
      'spec.id',
      `${describe(o.id)} is not a job id: use 1 to 200 characters from A-Z a-z 0-9 . _ - @ : +, starting with a letter or digit`,
    );
  }
  const id = o.id;
  for (const key of ['app', 'release', 'processType'] as const) {
    const v = o[key];
    if (!isValidId(v)) {
      invalid(`spec.${key}`, `${describe(v)} is not a valid ${key}`, id);
    }
  }
  if (typeof o.index !== 'number' || !Number.isInteger(o.index) || o.index < 0 || o.index > 1e6) {
    invalid('spec.index', `${describe(o.index)} is not a whole number from 0 to 1000000`, id);
  }
  if (typeof o.command !== 'string' || o.command.trim() === '') {
    invalid('spec.command', 'it must be a non-empty string', id);
  }
  if (Buffer.byteLength(o.command) > MAX_COMMAND || o.command.includes('\0')) {
    invalid('spec.command', `it must be at most ${MAX_COMMAND} bytes (UTF-8), without NUL`, id);
  }
  if (typeof o.cwd !== 'string' || !o.cwd.startsWith('/') || o.cwd.includes('\0')) {
    invalid('spec.cwd', `${describe(o.cwd)} is not an absolute path`, id);
  }
  if (typeof o.env !== 'object' || o.env === null || Array.isArray(o.env)) {
    invalid('spec.env', 'it must be a record of strings', id);
  }
  const env: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(o.env)) {
    if (!ENV_NAME.test(name)) invalid(`spec.env`, `${describe(name)} is not a variable name`, id);
    if (typeof value !== 'string' || value.includes('\0')) {
      invalid(`spec.env.${name}`, 'it must be a string without NUL', id);
    }
    const size = Buffer.byteLength(name) + Buffer.byteLength(value) + 1;
    if (size > MAX_ENV_VAR_BYTES) {
      invalid(
        `spec.env.${name}`,
        `${name}=value is ${size} bytes, over the ${MAX_ENV_VAR_BYTES} one variable may have (the kernel refuses to exec it): keep large values in a file`,
        id,
      );
    }
    bytes += size + 1;
    env[name] = value;
  }
  if (bytes > MAX_ENV_BYTES) {
    invalid(
      'spec.env',
      `it is over ${MAX_ENV_BYTES} bytes (UTF-8): keep large values in files`,
      id,
    );
  }
  const out: { -readonly [K in keyof JobSpec]: JobSpec[K] } = {
    id,
    app: o.app as string,
    release: o.release as string,
    processType: o.processType as string,
    index: o.index,
    command: o.command,
    cwd: o.cwd,
    env,
  };
  if (o.memoryMiB !== undefined) {
    const m = o.memoryMiB;
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 1 || m > 2 ** 30) {
      invalid('spec.memoryMiB', `${describe(m)} is not a whole number of MiB from 1`, id);
    }
    out.memoryMiB = m;
  }
  if (o.cpuMillis !== undefined) {
    const c = o.cpuMillis;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > 2 ** 30) {
      invalid('spec.cpuMillis', `${describe(c)} is not a whole number of millicores from 1`, id);
    }
    out.cpuMillis = c;
  }
  if (o.image !== undefined) {
    const image = o.image;
    if (typeof image !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,511}$/.test(image)) {
      invalid('spec.image', `${describe(image)} is not an image reference`, id);
    }
    out.image = image;
  }
  if (o.stopGraceMs !== undefined) {
    const g = o.stopGraceMs;
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g > 3_600_000) {
      invalid('spec.stopGraceMs', `${describe(g)} is not a whole number of ms up to an hour`, id);
    }
    out.stopGraceMs = g;
  }
  return out;
}
