import { isIP } from 'node:net';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { validate } from './http/body.js';
import { PaasError, PaasErrorCodes } from '../errors.js';
import { quoted } from '../internal/quoted.js';

/** Where the cluster state lives. */
export type StoreUrl =
  /** SQLite in one file: one machine. */
  | { readonly kind: 'sqlite'; readonly path: string }
  /** etcd: a cluster. */
  | { readonly kind: 'etcd'; readonly endpoints: readonly string[]; readonly prefix: string };

/** Everything `flotilla server` runs with, resolved from flags, variables and defaults. */
export interface ServerConfig {
  /** The data directory: SQLite store, repositories, builds, slugs, jobs, token. */
  readonly dataDir: string;
  /** The API's address (`127.0.0.1`). */
  readonly apiHost: string;
  /**
   * The address other machines reach this one at (`--advertise-host`): registered for the API,
   * the host agent and its jobs in place of `apiHost`. Needed in a cluster when `apiHost` is a
   * wildcard (`0.0.0.0`, `::`), which no other machine can dial; on SQLite (one machine) such
   * an `apiHost` advertises `127.0.0.1`.
   */
  readonly advertiseHost: string | undefined;
  /** 0 picks a free port. */
  readonly apiPort: number;
  /** The router's address (`127.0.0.1`). */
  readonly routerHost: string;
  /** 0 picks a free port. */
  readonly routerPort: number;
  /** The token given by flag or `FLOTILLA_TOKEN`; otherwise one is kept in the data directory. */
  readonly token: string | undefined;
  /** The cluster state's store. */
  readonly store: StoreUrl;
  /** What runs jobs: local processes, or Docker containers. */
  readonly driver: 'process' | 'docker';
  /** This machine's host id (a DNS label). */
  readonly hostId: string;
  /** The ports the host agent hands to jobs. */
  readonly jobPorts: { readonly from: number; readonly to: number };
  /**
   * What the host agent offers the scheduler (`--host-cpu`, `--host-memory`): CPU millis and
   * memory MiB that dynos book by their size (standard: 500 millis, 512 MiB). By default,
   * with the process driver 4000 millis per core (local processes share the CPUs, and most
   * dynos idle: 1000 per core ran 4 standard dynos in all on a 2-core machine), with Docker
   * 1000 per core; memory is the machine's.
   */
  readonly capacity: { readonly cpu: number; readonly memory: number };
  /** Whether jobs are stopped when the server exits (by default they keep running and are adopted at the next start). */
  readonly stopJobsOnExit: boolean;
  /**
   * How long each new dyno of a deploy must stay up before it counts (`--deploy-min-healthy`),
   * ms; 0: counted once up. See the controller's `deploy.minHealthyMs`.
   */
  readonly deployMinHealthyMs: number;
  /** pino's level for the logs on stderr. */
  readonly logLevel: string;
  /** Which components this process runs. */
  readonly roles: {
    /** The API, git and the controller. */
    readonly api: boolean;
    /** A scheduler. */
    readonly scheduler: boolean;
    /** A host agent with its driver. */
    readonly host: boolean;
    /** A router. */
    readonly router: boolean;
  };
}

/** A DNS name: dot-separated labels of letters, digits and inner hyphens. */
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A number as a flag or variable gives it: decimal digits, maybe signed or with a fraction (the
 * checks after it say what is wrong with those). `z.coerce` took `''` (an empty variable) as 0,
 * and `' 5'`, `1e3` and `0x10` as numbers: an empty FLOTILLA_API_PORT meant any free port.
 */
const decimal = (error: string) =>
  z
    .string()
    .regex(/^-?\d{1,16}(\.\d{1,16})?$/, error)
    .transform(Number);

const port = decimal('must be a port number').pipe(
  z
    .number()
    .int('must be a whole number')
    .min(0, 'must be 0 (any free port) to 65535')
    .max(65535, 'must be 0 (any free port) to 65535'),
);

const raw = z.object({
  dataDir: z
    .string()
    .min(1)
    .refine((s) => !s.includes('\0'), 'must not contain NUL'),
  apiHost: z.string().min(1),
  advertiseHost: z
    .string()
    // An IPv6 address may come in brackets, as in a URL.
    .transform(unbracket)
    .refine(
      (h) => isIP(h) !== 0 || (HOSTNAME.test(h) && !/^[\d.]+$/.test(h)),
      'must be a host name or an IP address, without a port (the API port is --api-port)',
    )
    .refine((h) => !isWildcard(h), 'must be an address other machines can dial, not a wildcard')
    .optional(),
  apiPort: port,
  routerHost: z.string().min(1),
  routerPort: port,
  token: z.string().optional(),
  store: z.string().optional(),
  driver: z.enum(['process', 'docker'], { error: 'must be process or docker' }),
  hostId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a DNS label (a-z, 0-9, -)'),
  jobPorts: z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, 'must be a range such as 20000-20999')
    .transform((s) => {
      const [from, to] = s.split('-').map(Number) as [number, number];
      return { from, to };
    })
    .refine(
      (r) => r.from >= 1024 && r.to <= 65535 && r.from <= r.to,
      'must be within 1024-65535, low to high',
    ),
  hostCpu: decimal('must be a number of CPU millis (1000 per core)')
    .pipe(
      z
        .number()
        .int('must be a whole number of CPU millis (1000 per core)')
        .min(1, 'must be at least 1 (CPU millis, 1000 per core)')
        .max(10_000_000, 'must be at most 10000000 (CPU millis, 1000 per core)'),
    )
    .optional(),
  hostMemory: decimal('must be a number of MiB')
    .pipe(
      z
        .number()
        .int('must be a whole number of MiB')
        .min(1, 'must be at least 1 (MiB)')
        .max(1_000_000_000, 'must be at most 1000000000 (MiB)'),
    )
    .optional(),
  stopJobsOnExit: z.boolean(),
  deployMinHealthyMs: decimal('must be a number of ms').pipe(
    z
      .number()
      .int('must be a whole number of ms')
      .min(0, 'must be at least 0 (ms)')
      .max(59_999, 'must be below 60000 ms (the time a new dyno has to become ready)'),
  ),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

/** Each field's flag and variable, for messages: the user gave one of those, not the field. */
const WHERE: Readonly<Record<string, readonly [flag: string, env: string | undefined]>> = {
  dataDir: ['--data-dir', 'FLOTILLA_DATA_DIR'],
  apiHost: ['--api-host', 'FLOTILLA_API_HOST'],
  advertiseHost: ['--advertise-host', 'FLOTILLA_ADVERTISE_HOST'],
  apiPort: ['--api-port', 'FLOTILLA_API_PORT'],
  routerHost: ['--router-host', 'FLOTILLA_ROUTER_HOST'],
  routerPort: ['--router-port', 'FLOTILLA_ROUTER_PORT'],
  token: ['--token', 'FLOTILLA_TOKEN'],
  store: ['--store', 'FLOTILLA_STORE'],
  driver: ['--driver', 'FLOTILLA_DRIVER'],
  hostId: ['--host-id', 'FLOTILLA_HOST_ID'],
  jobPorts: ['--job-ports', 'FLOTILLA_JOB_PORTS'],
  hostCpu: ['--host-cpu', 'FLOTILLA_HOST_CPU'],
  hostMemory: ['--host-memory', 'FLOTILLA_HOST_MEMORY'],
  stopJobsOnExit: ['--stop-jobs', undefined],
  deployMinHealthyMs: ['--deploy-min-healthy', 'FLOTILLA_DEPLOY_MIN_HEALTHY_MS'],
  logLevel: ['--log-level', 'FLOTILLA_LOG_LEVEL'],
};

/**
 * {@link validate} of the server's settings, whose message names the flag (and variable) and the
 * value given, not the field: `--host-cpu (FLOTILLA_HOST_CPU) "lots": must be a number of CPU
 * millis (1000 per core)`; it said `hostCpu: must be...`. A token's value is never shown.
 */
function validateSettings(input: Record<string, unknown>): z.output<typeof raw> {
  try {
    return validate(raw, input);
  } catch (err) {
    if (!(err instanceof PaasError)) throw err;
    const key = Object.keys(WHERE).find((k) => err.message.startsWith(`${k}: `));
    const where = key === undefined ? undefined : WHERE[key];
    if (key === undefined || where === undefined)
      throw new PaasError(PaasErrorCodes.INVALID_OPTIONS, err.message, { cause: err });
    const value = input[key];
    const shown = key === 'token' || typeof value !== 'string' ? '' : ` ${quoted(value)}`;
    throw new PaasError(
      PaasErrorCodes.INVALID_OPTIONS,
      `${where[0]}${where[1] === undefined ? '' : ` (${where[1]})`}${shown}: ${err.message.slice(key.length + 2)}`,
      { cause: err },
    );
  }
}

/** The flags of `flotilla server` (all optional: variables, then defaults, fill the rest). */
export interface ServerFlags {
  /** `--data-dir`. */
  dataDir?: string;
  /** `--api-host`. */
  apiHost?: string;
  /** `--advertise-host`. */
  advertiseHost?: string;
  /** `--api-port`. */
  apiPort?: string;
  /** `--router-host`. */
  routerHost?: string;
  /** `--router-port`. */
  routerPort?: string;
  /** `--token`. */
  token?: string;
  /** `--store`. */
  store?: string;
  /** `--driver`. */
  driver?: string;
  /** `--host-id`. */
  hostId?: string;
  /** `--job-ports`. */
  jobPorts?: string;
  /** `--host-cpu`. */
  hostCpu?: string;
  /** `--host-memory`. */
  hostMemory?: string;
  /** `--stop-jobs`. */
  stopJobs?: boolean;
  /** `--deploy-min-healthy`. */
  deployMinHealthy?: string;
  /** `--log-level`. */
  logLevel?: string;
}

/**
 * Resolves the server's configuration: flags first, then `FLOTILLA_*` variables, then the
 * embedded defaults (SQLite in `./.flotilla`, API on 127.0.0.1:7700, router on 8080).
 *
 * @throws `PaasError` `FLOTILLA_PAAS_INVALID_OPTIONS` when a flag or variable is malformed; the
 *   message names the flag, its variable and the value given.
 */
export function resolveServerConfig(
  flags: ServerFlags,
  env: NodeJS.ProcessEnv = process.env,
  roles: ServerConfig['roles'] = { api: true, scheduler: true, host: true, router: true },
): ServerConfig {
  const r = validateSettings({
    dataDir: flags.dataDir ?? env.FLOTILLA_DATA_DIR ?? '.flotilla',
    apiHost: flags.apiHost ?? env.FLOTILLA_API_HOST ?? '127.0.0.1',
    advertiseHost: flags.advertiseHost ?? emptyToUndefined(env.FLOTILLA_ADVERTISE_HOST),
    apiPort: flags.apiPort ?? emptyToUndefined(env.FLOTILLA_API_PORT) ?? '7700',
    routerHost: flags.routerHost ?? env.FLOTILLA_ROUTER_HOST ?? '127.0.0.1',
    routerPort: flags.routerPort ?? emptyToUndefined(env.FLOTILLA_ROUTER_PORT) ?? '8080',
    token: flags.token ?? emptyToUndefined(env.FLOTILLA_TOKEN),
    store: flags.store ?? emptyToUndefined(env.FLOTILLA_STORE),
    driver: flags.driver ?? env.FLOTILLA_DRIVER ?? 'process',
    hostId: flags.hostId ?? env.FLOTILLA_HOST_ID ?? defaultHostId(),
    jobPorts: flags.jobPorts ?? env.FLOTILLA_JOB_PORTS ?? '20000-20999',
    hostCpu: flags.hostCpu ?? emptyToUndefined(env.FLOTILLA_HOST_CPU),
    hostMemory: flags.hostMemory ?? emptyToUndefined(env.FLOTILLA_HOST_MEMORY),
    stopJobsOnExit: flags.stopJobs ?? false,
    deployMinHealthyMs:
      flags.deployMinHealthy ?? emptyToUndefined(env.FLOTILLA_DEPLOY_MIN_HEALTHY_MS) ?? '0',
    logLevel: flags.logLevel ?? env.FLOTILLA_LOG_LEVEL ?? 'info',
  });
  const dataDir = resolve(r.dataDir);
  const store = parseStoreUrl(r.store, dataDir);
  // The API's address is registered (the host agent's, its jobs', the servers' artifact
  // peers): one that listens everywhere says where it is reached. On one machine that is
  // loopback; in a cluster only the operator knows.
  let advertiseHost = r.advertiseHost;
  if (advertiseHost === undefined && isWildcard(r.apiHost) && (roles.api || roles.host)) {
    if (store.kind === 'sqlite') advertiseHost = '127.0.0.1';
    else
      throw new PaasError(
        PaasErrorCodes.INVALID_OPTIONS,
        `--api-host ${r.apiHost} listens on every interface, which the other machines of the cluster cannot dial: give the address they reach this one at with --advertise-host (FLOTILLA_ADVERTISE_HOST)`,
      );
  }
  return {
    dataDir,
    apiHost: r.apiHost,
    advertiseHost,
    apiPort: r.apiPort,
    routerHost: r.routerHost,
    routerPort: r.routerPort,
    token: r.token,
    store,
    driver: r.driver,
    hostId: r.hostId,
    jobPorts: r.jobPorts,
    capacity: {
      cpu: r.hostCpu ?? availableParallelism() * (r.driver === 'process' ? 4000 : 1000),
      memory: r.hostMemory ?? Math.floor(totalmem() / 2 ** 20),
    },
    stopJobsOnExit: r.stopJobsOnExit,
    deployMinHealthyMs: r.deployMinHealthyMs,
    logLevel: r.logLevel,
    roles,
  };
}

/** Whether `host` listens on every interface: `0.0.0.0`, `::` (also bracketed). */
function isWildcard(host: string): boolean {
  const h = unbracket(host);
  return h === '0.0.0.0' || (isIP(h) === 6 && /^[0:]+$/.test(h));
}

/** `host` without the brackets of an IPv6 address as a URL writes it (`[::1]` is `::1`). */
function unbracket(host: string): string {
  return /^\[.*\]$/.test(host) ? host.slice(1, -1) : host;
}

/** `host` as a URL writes it: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function emptyToUndefined(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

function defaultHostId(): string {
  const h = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63);
  return h === '' ? 'local' : h;
}

/**
 * Parses `--store`: `sqlite:<path>` (default `<dataDir>/state.db`) or
 * `etcd://host:port[,host:port...][/prefix]`.
 */
export function parseStoreUrl(url: string | undefined, dataDir: string): StoreUrl {
  if (url === undefined || url === 'sqlite' || url === 'sqlite:')
    return { kind: 'sqlite', path: resolve(dataDir, 'state.db') };
  if (url.startsWith('sqlite:'))
    return { kind: 'sqlite', path: resolve(url.slice('sqlite:'.length)) };
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (m !== null) {
    const endpoints = (m[1] ?? '').split(',').map((hp) => {
      const portNumber = Number(/^[A-Za-z0-9.-]+:(\d{1,5})$/.exec(hp)?.[1]);
      if (!(portNumber >= 1 && portNumber <= 65535))
        throw new PaasError(PaasErrorCodes.INVALID_OPTIONS, `--store: ${hp} is not host:port`);
      return `http://${hp}`;
    });
    const prefix =
      m[2] === undefined || m[2] === '/' ? '/flotilla/' : m[2].endsWith('/') ? m[2] : `${m[2]}/`;
    return { kind: 'etcd', endpoints, prefix };
  }
  throw new PaasError(
    PaasErrorCodes.INVALID_OPTIONS,
    `--store: ${url} is neither sqlite:<path> nor etcd://host:port[,host:port][/prefix]`,
  );
}
