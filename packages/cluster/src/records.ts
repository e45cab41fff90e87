import {
  boolean,
  compact,
  fail,
  id,
  integer,
  labels,
  nonEmpty,
  number,
  object,
  oneOf,
  optional,
  string,
} from './internal/check.js';

/** The most jobs one process type of a formation may ask for. */
export const MAX_PROCESS_COUNT = 100_000;
/** The largest CPU (millicores) or memory (MiB) a job or host may declare: 2^40. */
export const MAX_RESOURCE = 2 ** 40;

/** CPU in millicores and memory in MiB. */
export interface Resources {
  /** Millicores: 1000 is one core. */
  readonly cpu: number;
  /** MiB. */
  readonly memory: number;
}

/** How many of one process type to run, and where. */
export interface ProcessSpec {
  /** Jobs to run (per eligible host when `omni`), 0 to {@link MAX_PROCESS_COUNT}. */
  readonly count: number;
  /** What each job reserves on its host: both must be above 0. */
  readonly resources: Resources;
  /** Host tags that must all match for a host to be eligible. */
  readonly constraints?: Readonly<Record<string, string>>;
  /** Run `count` jobs on every eligible host (a log shipper, a router) instead of `count` in all. */
  readonly omni?: boolean;
}

/** The declared processes of one release of an app, at `formations/<app>/<release>`. Written by the controller. */
export interface Formation {
  readonly app: string;
  readonly release: string;
  readonly processes: Readonly<Record<string, ProcessSpec>>;
}

/** A host as its agent registers it at `hosts/<id>`. Written by the host agent only. */
export interface HostRecord {
  readonly id: string;
  /** Where the agent can be reached (`127.0.0.1:7000`), for logs and health checks. */
  readonly addr: string;
  /** Labels that constraints match and spreading reads (`zone`, `disk`...). */
  readonly tags?: Readonly<Record<string, string>>;
  /** What the host offers to jobs. */
  readonly capacity: Resources;
  /** When the agent (re)registered, ms since the epoch. */
  readonly registeredAt: number;
}

/** The agent's liveness at `heartbeats/<id>`, attached to its lease: it vanishes when the agent dies. */
export interface Heartbeat {
  /** When the agent registered this lease, ms since the epoch. */
  readonly at: number;
  /** The agent's lease, for operators' tools. */
  readonly lease: string;
}

/** An operator's settings for a host at `host-control/<id>`. Written by operators only. */
export interface HostControl {
  /** False: the host gets no new jobs, its jobs keep running (Nomad's eligibility). */
  readonly eligible: boolean;
  /** True: the host gets no new jobs and its jobs are moved elsewhere. */
  readonly drain: boolean;
  /**
   * Only with `drain`: when the drain's deadline passes, ms since the epoch. Until then a job
   * on the host stops once its replacement is up elsewhere; from then on the scheduler stops
   * every job left on the host, replacement up or not (Nomad's `node drain -deadline`).
   * Absent: no deadline, the jobs wait for their replacements however long it takes.
   */
  readonly drainDeadline?: number;
  /** Why, for humans. */
  readonly reason?: string;
  /** When it was last changed, ms since the epoch. */
  readonly updatedAt: number;
}

/**
 * A host as the scheduler sees it, derived from its three records: `down` without a live
 * heartbeat, else `draining` when an operator drains it, else `ineligible` when an operator
 * made it so, else `up`. Only `up` hosts get new jobs.
 */
export type HostState = 'up' | 'ineligible' | 'draining' | 'down';

/** Why the scheduler asked a job to stop. */
export type StopReason =
  /** More jobs than the formation wants (stopped newest first). */
  | 'scaled-down'
  /** No formation declares its app, release and type any more (an old release, say). */
  | 'no-formation'
  /** Its host is down: the job is lost; a replacement is planned elsewhere. */
  | 'host-down'
  /** Its host is draining: a replacement is planned elsewhere. */
  | 'host-draining'
  /**
   * Its host's drain deadline passed before a replacement was up elsewhere: stopped anyway
   * (the replacement, if it cannot be placed, is reported unplaced).
   */
  | 'drain-deadline'
  /** Its host no longer matches the process type's constraints. */
  | 'constraint-mismatch'
  /** Its host is not in the cluster state. */
  | 'host-unknown';

/** Every {@link StopReason}. */
export const STOP_REASONS: readonly StopReason[] = [
  'scaled-down',
  'no-formation',
  'host-down',
  'host-draining',
  'drain-deadline',
  'constraint-mismatch',
  'host-unknown',
];

/** A job's placement and desired state at `jobs/<host>/<id>`. Written by the scheduler only. */
export interface JobRecord {
  readonly id: string;
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly hostId: string;
  /** Its number within its process type, from 1, unique among the type's running jobs (`DYNO=web.<index>`). */
  readonly index: number;
  readonly resources: Resources;
  /** What the scheduler wants: `run`, or `stop` (the agent stops it and reports `down`). */
  readonly desired: 'run' | 'stop';
  /** Why the scheduler asked it to stop. */
  readonly stopReason?: StopReason;
  /** When it was placed, ms since the epoch; surplus jobs stop newest first. */
  readonly createdAt: number;
}

/** What a host agent observed of a job: `starting -> up -> down`, or `crashed`. */
export type ObservedJobState = 'starting' | 'up' | 'crashed' | 'down';

/** A job's observed state at `job-status/<host>/<id>`. Written by the host agent only. */
export interface JobStatus {
  readonly state: ObservedJobState;
  /** When its process last started, ms since the epoch (for crash backoff). */
  readonly startedAt?: number;
  /** When it ended, for `crashed` and `down`. */
  readonly finishedAt?: number;
  /** Its exit status, when it exited. */
  readonly exitStatus?: number;
  /** The signal that ended it (`SIGKILL`), when one did. */
  readonly signal?: string;
  /** The port it listens on (its `PORT`). */
  readonly port?: number;
  /** A sentence for humans: why it crashed, what the health check saw. */
  readonly message?: string;
  /** When the agent wrote it, ms since the epoch. */
  readonly updatedAt: number;
}

/**
 * A job's state as the scheduler counts it, derived from the scheduler's {@link JobRecord} and
 * the agent's {@link JobStatus} by {@link jobState}: `pending -> starting -> up -> stopping
 * -> down | crashed`.
 */
export type JobState = 'pending' | 'starting' | 'up' | 'stopping' | 'down' | 'crashed';

/** The per-host allocation summary at `alloc/<host>`; its revision is the commit check. Written by schedulers. */
export interface HostAlloc {
  readonly jobs: number;
  readonly cpu: number;
  readonly memory: number;
  /** The scheduler that last placed on the host. */
  readonly by: string;
}

/** The schedulers sharing the cluster, at `scheduler-epoch`: each owns the apps that hash to it. */
export interface SchedulerEpoch {
  /** Member scheduler ids, sorted. */
  readonly members: readonly string[];
}

/** What a release runs: a slug (a gzipped tarball) or a container image. */
export type Artifact =
  | {
      readonly type: 'slug';
      /** Where to fetch it: `file://`, `http://` or `https://`. */
      readonly url: string;
      /** Hex SHA-256 of the file, checked before use. */
      readonly sha256: string;
      /** Size in bytes. */
      readonly size: number;
    }
  | {
      readonly type: 'image';
      /** A local image reference (`flotilla/demo:v3` or `sha256:...`). */
      readonly image: string;
    };

/** How a host agent decides a job is ready. */
export type HealthCheck =
  | ({ readonly type: 'tcp' } & HealthCheckTiming)
  | ({
      readonly type: 'http';
      /** Path requested on the job's port (`/healthz`). */
      readonly path: string;
      /** The status that means healthy (default: any 2xx or 3xx). */
      readonly status?: number;
    } & HealthCheckTiming);

/** When and how often a {@link HealthCheck} runs; agents apply their defaults to what is absent. */
export interface HealthCheckTiming {
  /** Between checks, ms. */
  readonly intervalMs?: number;
  /** For one check, ms. */
  readonly timeoutMs?: number;
  /** Consecutive failures that mark a ready job not ready. */
  readonly threshold?: number;
  /** After start, how long failures are not counted, ms. */
  readonly graceMs?: number;
}

/** How to run one process type of a release. */
export interface ProcessDefinition {
  /** Run through `bash -c` (Procfile syntax). */
  readonly command: string;
  /** How to tell it is ready; agents default to tcp on `PORT` for `web`. */
  readonly healthCheck?: HealthCheck;
  /** Between SIGTERM and SIGKILL, ms. */
  readonly stopGraceMs?: number;
}

/**
 * What an agent runs for a job, at `releases/<app>/<release>`: artifact, config vars and
 * per-type commands. Written once by the controller: immutable (`FLOTILLA_CLUSTER_RELEASE_EXISTS`).
 */
export interface ReleaseRecord {
  readonly app: string;
  readonly release: string;
  readonly artifact: Artifact;
  /** Config vars, set in every job's environment. */
  readonly config: Readonly<Record<string, string>>;
  readonly processes: Readonly<Record<string, ProcessDefinition>>;
  /** When it was created, ms since the epoch. */
  readonly createdAt: number;
}

const TIME_MAX = 8.64e15;
const CONFIG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** An image reference: no whitespace, and no leading `-` that an engine's CLI would read as a flag. */
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$/;

/** Entries sorted by key, so that equal records serialise alike whatever order they came in. */
function sortedEntries(o: Record<string, unknown>): [string, unknown][] {
  return Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The one rule for a CPU or memory amount, shared with the scheduler's core: a whole number of
 * millicores or MiB from 0 to {@link MAX_RESOURCE}. Fractions are refused: sums of them drift,
 * and a host's books must balance to the unit.
 */
export function isResourceAmount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_RESOURCE;
}

function resources(v: unknown, path: string, min: number): Resources {
  const o = object(v, path);
  const amount = (x: unknown, p: string, unit: string): number => {
    if (!isResourceAmount(x) || x < min)
      fail(
        p,
        `must be a whole number of ${unit} from ${min} to ${MAX_RESOURCE}, got ${typeof x === 'number' ? x : typeof x}`,
      );
    return x;
  };
  return {
    cpu: amount(o.cpu, `${path}.cpu`, 'millicores'),
    memory: amount(o.memory, `${path}.memory`, 'MiB'),
  };
}

function positiveResources(v: unknown, path: string): Resources {
  const r = resources(v, path, 0);
  if (r.cpu <= 0 || r.memory <= 0)
    fail(
      path,
      `must reserve some cpu and memory (both above 0), got cpu ${r.cpu}, memory ${r.memory}`,
    );
  return r;
}

const time = (v: unknown, path: string): number => number(v, path, 0, TIME_MAX);

/** Checks a formation; returns a normalised copy. Throws `FLOTILLA_CLUSTER_INVALID_RECORD` naming the field. */
export function validateFormation(v: unknown, path = 'formation'): Formation {
  const o = object(v, path);
  const processes = object(o.processes, `${path}.processes`);
  const out: Record<string, ProcessSpec> = {};
  for (const [type, raw] of Object.entries(processes)) {
    const q = `${path}.processes.${type}`;
    id(type, q, 'process type');
    const s = object(raw, q);
    out[type] = compact<ProcessSpec>({
      count: integer(s.count, `${q}.count`, 0, MAX_PROCESS_COUNT),
      resources: positiveResources(s.resources, `${q}.resources`),
      constraints: optional(s.constraints, (c) => labels(c, `${q}.constraints`)),
      omni: optional(s.omni, (b) => boolean(b, `${q}.omni`)),
    });
  }
  return {
    app: id(o.app, `${path}.app`, 'app'),
    release: id(o.release, `${path}.release`, 'release'),
    processes: out,
  };
}

/** Checks a host record; returns a normalised copy. */
export function validateHostRecord(v: unknown, path = 'host'): HostRecord {
  const o = object(v, path);
  return compact<HostRecord>({
    id: id(o.id, `${path}.id`, 'host'),
    addr: nonEmpty(o.addr, `${path}.addr`, 256),
    tags: optional(o.tags, (t) => labels(t, `${path}.tags`)),
    capacity: resources(o.capacity, `${path}.capacity`, 0),
    registeredAt: time(o.registeredAt, `${path}.registeredAt`),
  });
}

/** Checks a heartbeat. */
export function validateHeartbeat(v: unknown, path = 'heartbeat'): Heartbeat {
  const o = object(v, path);
  return { at: time(o.at, `${path}.at`), lease: nonEmpty(o.lease, `${path}.lease`, 64) };
}

/** Checks an operator's host settings. */
export function validateHostControl(v: unknown, path = 'hostControl'): HostControl {
  const o = object(v, path);
  const drain = boolean(o.drain, `${path}.drain`);
  const drainDeadline = optional(o.drainDeadline, (d) => time(d, `${path}.drainDeadline`));
  if (drainDeadline !== undefined && !drain)
    fail(`${path}.drainDeadline`, 'is only for a draining host (drain: true): drop it');
  return compact<HostControl>({
    eligible: boolean(o.eligible, `${path}.eligible`),
    drain,
    drainDeadline,
    reason: optional(o.reason, (r) => string(r, `${path}.reason`, 1024)),
    updatedAt: time(o.updatedAt, `${path}.updatedAt`),
  });
}

/** Checks a job record. */
export function validateJobRecord(v: unknown, path = 'job'): JobRecord {
  const o = object(v, path);
  return compact<JobRecord>({
    id: id(o.id, `${path}.id`, 'job'),
    app: id(o.app, `${path}.app`, 'app'),
    release: id(o.release, `${path}.release`, 'release'),
    type: id(o.type, `${path}.type`, 'process type'),
    hostId: id(o.hostId, `${path}.hostId`, 'host'),
    index: integer(o.index, `${path}.index`, 1, MAX_PROCESS_COUNT * 2),
    resources: resources(o.resources, `${path}.resources`, 0),
    desired: oneOf(o.desired, `${path}.desired`, ['run', 'stop'] as const),
    stopReason: optional(o.stopReason, (r) => oneOf(r, `${path}.stopReason`, STOP_REASONS)),
    createdAt: time(o.createdAt, `${path}.createdAt`),
  });
}

/** Checks a job status. */
export function validateJobStatus(v: unknown, path = 'jobStatus'): JobStatus {
  const o = object(v, path);
  return compact<JobStatus>({
    state: oneOf(o.state, `${path}.state`, ['starting', 'up', 'crashed', 'down'] as const),
    startedAt: optional(o.startedAt, (t) => time(t, `${path}.startedAt`)),
    finishedAt: optional(o.finishedAt, (t) => time(t, `${path}.finishedAt`)),
    exitStatus: optional(o.exitStatus, (n) => integer(n, `${path}.exitStatus`, -255, 255)),
    signal: optional(o.signal, (s) => nonEmpty(s, `${path}.signal`, 32)),
    port: optional(o.port, (n) => integer(n, `${path}.port`, 1, 65535)),
    message: optional(o.message, (s) => string(s, `${path}.message`, 4096)),
    updatedAt: time(o.updatedAt, `${path}.updatedAt`),
  });
}

/** Checks a host allocation summary. */
export function validateHostAlloc(v: unknown, path = 'alloc'): HostAlloc {
  const o = object(v, path);
  return {
    jobs: integer(o.jobs, `${path}.jobs`, 0, Number.MAX_SAFE_INTEGER),
    cpu: number(o.cpu, `${path}.cpu`, 0, Number.MAX_VALUE),
    memory: number(o.memory, `${path}.memory`, 0, Number.MAX_VALUE),
    by: nonEmpty(o.by, `${path}.by`, 256),
  };
}

/** Checks a scheduler epoch. */
export function validateSchedulerEpoch(v: unknown, path = 'epoch'): SchedulerEpoch {
  const o = object(v, path);
  if (!Array.isArray(o.members)) fail(`${path}.members`, 'must be an array of scheduler ids');
  const members = o.members.map((m, i) => id(m, `${path}.members[${i}]`, 'host'));
  return { members: [...new Set(members)].sort() };
}

function healthCheck(v: unknown, path: string): HealthCheck {
  const o = object(v, path);
  const type = oneOf(o.type, `${path}.type`, ['tcp', 'http'] as const);
  const timing = {
    intervalMs: optional(o.intervalMs, (n) => integer(n, `${path}.intervalMs`, 10, 3_600_000)),
    timeoutMs: optional(o.timeoutMs, (n) => integer(n, `${path}.timeoutMs`, 1, 3_600_000)),
    threshold: optional(o.threshold, (n) => integer(n, `${path}.threshold`, 1, 1000)),
    graceMs: optional(o.graceMs, (n) => integer(n, `${path}.graceMs`, 0, 86_400_000)),
  };
  if (type === 'tcp') return compact<HealthCheck>({ type, ...timing });
  const p = nonEmpty(o.path, `${path}.path`, 2048);
  if (!p.startsWith('/') || /\s/.test(p))
    fail(
      `${path}.path`,
      `must start with / and hold no whitespace, got ${JSON.stringify(p.slice(0, 40))}`,
    );
  return compact<HealthCheck>({
    type,
    path: p,
    status: optional(o.status, (n) => integer(n, `${path}.status`, 100, 599)),
    ...timing,
  });
}

function artifact(v: unknown, path: string): Artifact {
  const o = object(v, path);
  const type = oneOf(o.type, `${path}.type`, ['slug', 'image'] as const);
  if (type === 'image') {
    const image = nonEmpty(o.image, `${path}.image`, 512);
    if (!IMAGE.test(image))
      fail(
        `${path}.image`,
        `must be an image reference (A-Z a-z 0-9 . _ - / : @ +, starting with a letter or digit), got ${JSON.stringify(image.slice(0, 40))}`,
      );
    return { type, image };
  }
  const url = nonEmpty(o.url, `${path}.url`, 4096);
  if (!/^(file|https?):\/\//.test(url))
    fail(
      `${path}.url`,
      `must be a file://, http:// or https:// URL, got ${JSON.stringify(url.slice(0, 40))}`,
    );
  const sha256 = string(o.sha256, `${path}.sha256`, 64);
  if (!SHA256.test(sha256)) fail(`${path}.sha256`, 'must be 64 lowercase hex digits');
  return { type, url, sha256, size: integer(o.size, `${path}.size`, 0, Number.MAX_SAFE_INTEGER) };
}

/** Checks a release record; returns a normalised copy (equal records serialise alike). */
export function validateReleaseRecord(v: unknown, path = 'release'): ReleaseRecord {
  const o = object(v, path);
  const config: Record<string, string> = {};
  for (const [name, value] of sortedEntries(object(o.config, `${path}.config`))) {
    // `__proto__` would be dropped by the assignment below: refused, not lost.
    if (!CONFIG_NAME.test(name) || name.length > 256 || name === '__proto__')
      fail(
        `${path}.config`,
        `has an invalid variable name ${JSON.stringify(name.slice(0, 40))}: use A-Z a-z 0-9 _, not starting with a digit, at most 256 characters, not __proto__`,
      );
    config[name] = string(value, `${path}.config.${name}`, 256 * 1024);
  }
  const processes: Record<string, ProcessDefinition> = {};
  const raw = object(o.processes, `${path}.processes`);
  for (const [type, def] of sortedEntries(raw)) {
    const q = `${path}.processes.${type}`;
    id(type, q, 'process type');
    const d = object(def, q);
    processes[type] = compact<ProcessDefinition>({
      command: nonEmpty(d.command, `${q}.command`, 64 * 1024),
      healthCheck: optional(d.healthCheck, (h) => healthCheck(h, `${q}.healthCheck`)),
      stopGraceMs: optional(d.stopGraceMs, (n) => integer(n, `${q}.stopGraceMs`, 0, 3_600_000)),
    });
  }
  return {
    app: id(o.app, `${path}.app`, 'app'),
    release: id(o.release, `${path}.release`, 'release'),
    artifact: artifact(o.artifact, `${path}.artifact`),
    config,
    processes,
    createdAt: time(o.createdAt, `${path}.createdAt`),
  };
}

/**
 * The state the scheduler counts for a job: its own desired state and the agent's observed one.
 * No status yet: `pending` (or `stopping` if already asked to stop). An ended status (`down`,
 * `crashed`) wins. Asked to stop while `starting` or `up`: `stopping`.
 */
export function jobState(job: Pick<JobRecord, 'desired'>, status: JobStatus | undefined): JobState {
  if (status === undefined) return job.desired === 'run' ? 'pending' : 'stopping';
  if (status.state === 'down' || status.state === 'crashed') return status.state;
  return job.desired === 'stop' ? 'stopping' : status.state;
}

/**
 * Whether a host's drain is past its deadline at `now` (ms since the epoch): the scheduler then
 * stops its remaining jobs whether or not their replacements are up. False without a drain or
 * without a deadline. The scheduler and every reader of the cluster state share this rule.
 */
export function drainForced(control: HostControl | undefined, now: number): boolean {
  return (
    control?.drain === true && control.drainDeadline !== undefined && now >= control.drainDeadline
  );
}

/** The state the scheduler sees for a host; see {@link HostState}. */
export function hostState(live: boolean, control: HostControl | undefined): HostState {
  if (!live) return 'down';
  if (control?.drain === true) return 'draining';
  if (control !== undefined && !control.eligible) return 'ineligible';
  return 'up';
}
