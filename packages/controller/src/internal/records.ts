import type { KeyValue } from '@flotilla/store';
import type { Build, BuildOutputLine } from '../build.js';
import type { Deployment, FailedJob } from '../deployment.js';
import type { Domain } from '../domain.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { Release } from '../release.js';
import {
  bool,
  compact,
  fail,
  int,
  obj,
  oneOf,
  opt,
  RecordFieldError,
  str,
  strings,
} from './check.js';

/** One process type's declared quantity and size. */
export interface FormationSetting {
  readonly quantity: number;
  readonly size: string;
}

/** The app record at `apps/<name>`: the app, its release counter, what is live, its formation. */
export interface AppRecord {
  readonly name: string;
  readonly createdAt: number;
  readonly meta: Readonly<Record<string, string>>;
  /** The newest release number allocated (0 before the first). */
  readonly seq: number;
  /** The live release and its cluster release id, once a deploy went live. */
  readonly live?: { readonly release: string; readonly deployment: string };
  /** Declared quantities and sizes, by process type. */
  readonly formation: Readonly<Record<string, FormationSetting>>;
  /** Counter of cluster release ids made for restarts (`v5-r3`). */
  readonly generation: number;
  /** Set when destroy began: the app refuses everything else. */
  readonly destroying?: boolean;
}

/** A deploy lock at `locks/<app>`, attached to its holder's lease. */
export interface LockRecord {
  readonly owner: string;
  readonly op: string;
  readonly at: number;
}

/** A chunk of build output at `build-output/<app>/<build>/<first seq>`. */
export interface OutputChunk {
  readonly lines: readonly BuildOutputLine[];
  /** Set on the last chunk: the output is complete. */
  readonly end?: boolean;
}

/** A live controller at `instances/<id>`, attached to its lease. */
export interface InstanceRecord {
  readonly id: string;
  readonly startedAt: number;
}

const TIME = 8.64e15;
const time = (v: unknown, p: string): number => int(v, p, 0, TIME);

export function parseApp(v: unknown): AppRecord {
  const o = obj(v, 'app');
  const formation: Record<string, FormationSetting> = {};
  for (const [type, raw] of Object.entries(obj(o.formation, 'app.formation'))) {
    const f = obj(raw, `app.formation.${type}`);
    formation[type] = {
      quantity: int(f.quantity, `app.formation.${type}.quantity`, 0, 100_000),
      size: str(f.size, `app.formation.${type}.size`, 64),
    };
  }
  const live = opt(o.live, (l) => {
    const x = obj(l, 'app.live');
    return {
      release: str(x.release, 'app.live.release', 32),
      deployment: str(x.deployment, 'app.live.deployment', 64),
    };
  });
  return compact<AppRecord>({
    name: str(o.name, 'app.name', 63),
    createdAt: time(o.createdAt, 'app.createdAt'),
    meta: strings(o.meta, 'app.meta', 1024),
    seq: int(o.seq, 'app.seq'),
    live,
    formation,
    generation: int(o.generation, 'app.generation'),
    destroying: opt(o.destroying, (b) => bool(b, 'app.destroying')),
  });
}

export function parseRelease(v: unknown): Release {
  const o = obj(v, 'release');
  return compact<Release>({
    id: str(o.id, 'release.id', 32),
    version: int(o.version, 'release.version', 1),
    app: str(o.app, 'release.app', 63),
    build: opt(o.build, (b) => str(b, 'release.build', 64)),
    config: strings(o.config, 'release.config'),
    processTypes: strings(o.processTypes, 'release.processTypes', 64 * 1024),
    description: str(o.description, 'release.description', 4096),
    user: opt(o.user, (u) => str(u, 'release.user', 256)),
    createdAt: time(o.createdAt, 'release.createdAt'),
  });
}

export function parseBuild(v: unknown): Build {
  const o = obj(v, 'build');
  const artifact = opt(o.artifact, (a) => {
    const x = obj(a, 'build.artifact');
    const type = oneOf(x.type, 'build.artifact.type', ['slug', 'image'] as const);
    if (type === 'image') return { type, image: str(x.image, 'build.artifact.image', 512) };
    const sha256 = str(x.sha256, 'build.artifact.sha256', 64);
    if (!/^[0-9a-f]{64}$/.test(sha256))
      fail('build.artifact.sha256', 'must be 64 lowercase hex digits');
    return { type, sha256, size: int(x.size, 'build.artifact.size') };
  });
  const buildpacks = opt(o.buildpacks, (b) => {
    if (!Array.isArray(b)) fail('build.buildpacks', 'must be an array');
    return b.map((x, i) => {
      const e = obj(x, `build.buildpacks[${i}]`);
      return {
        name: str(e.name, `build.buildpacks[${i}].name`, 256),
        url: str(e.url, `build.buildpacks[${i}].url`, 4096),
      };
    });
  });
  return compact<Build>({
    id: str(o.id, 'build.id', 64),
    app: str(o.app, 'build.app', 63),
    source: str(o.source, 'build.source', 600),
    sourceType: oneOf(o.sourceType, 'build.sourceType', ['tarball', 'git', 'image'] as const),
    builder: oneOf(o.builder, 'build.builder', ['buildpack', 'dockerfile', 'image'] as const),
    status: oneOf(o.status, 'build.status', ['pending', 'running', 'succeeded', 'failed'] as const),
    error: opt(o.error, (e) => str(e, 'build.error', 8192)),
    artifact,
    processTypes: opt(o.processTypes, (p) => strings(p, 'build.processTypes', 64 * 1024)),
    buildpacks,
    release: opt(o.release, (r) => str(r, 'build.release', 32)),
    deployment: opt(o.deployment, (d) => str(d, 'build.deployment', 64)),
    deployError: opt(o.deployError, (e) => str(e, 'build.deployError', 8192)),
    createdAt: time(o.createdAt, 'build.createdAt'),
    finishedAt: opt(o.finishedAt, (t) => time(t, 'build.finishedAt')),
    owner: str(o.owner, 'build.owner', 200),
  });
}

function failedJob(v: unknown, p: string): FailedJob {
  const o = obj(v, p);
  if (!Array.isArray(o.logs)) fail(`${p}.logs`, 'must be an array');
  return compact<FailedJob>({
    id: str(o.id, `${p}.id`, 200),
    type: str(o.type, `${p}.type`, 200),
    host: str(o.host, `${p}.host`, 200),
    state: str(o.state, `${p}.state`, 32),
    exitStatus: opt(o.exitStatus, (n) => int(n, `${p}.exitStatus`, -255, 255)),
    signal: opt(o.signal, (s) => str(s, `${p}.signal`, 32)),
    message: opt(o.message, (s) => str(s, `${p}.message`, 4096)),
    logs: o.logs.map((l, i) => str(l, `${p}.logs[${i}]`, 16 * 1024)),
  });
}

export function parseDeployment(v: unknown): Deployment {
  const o = obj(v, 'deployment');
  const failedJobs = opt(o.failedJobs, (f) => {
    if (!Array.isArray(f)) fail('deployment.failedJobs', 'must be an array');
    return f.map((x, i) => failedJob(x, `deployment.failedJobs[${i}]`));
  });
  return compact<Deployment>({
    id: str(o.id, 'deployment.id', 64),
    app: str(o.app, 'deployment.app', 63),
    release: str(o.release, 'deployment.release', 32),
    from: opt(o.from, (f) => str(f, 'deployment.from', 32)),
    kind: oneOf(o.kind, 'deployment.kind', ['release', 'restart', 'scale'] as const),
    status: oneOf(o.status, 'deployment.status', [
      'running',
      'succeeded',
      'failed',
      'rolled-back',
    ] as const),
    reason: opt(o.reason, (r) => str(r, 'deployment.reason', 16 * 1024)),
    failedJobs,
    createdAt: time(o.createdAt, 'deployment.createdAt'),
    finishedAt: opt(o.finishedAt, (t) => time(t, 'deployment.finishedAt')),
    owner: str(o.owner, 'deployment.owner', 200),
  }) as Deployment;
}

export function parseDomain(v: unknown): Domain {
  const o = obj(v, 'domain');
  return {
    hostname: str(o.hostname, 'domain.hostname', 253),
    app: str(o.app, 'domain.app', 63),
    kind: oneOf(o.kind, 'domain.kind', ['default', 'custom'] as const),
    routeId: opt(o.routeId, (r) => str(r, 'domain.routeId', 512)),
    createdAt: time(o.createdAt, 'domain.createdAt'),
  };
}

export function parseLock(v: unknown): LockRecord {
  const o = obj(v, 'lock');
  return {
    owner: str(o.owner, 'lock.owner', 200),
    op: str(o.op, 'lock.op', 64),
    at: time(o.at, 'lock.at'),
  };
}

export function parseOutputChunk(v: unknown): OutputChunk {
  const o = obj(v, 'output');
  if (!Array.isArray(o.lines)) fail('output.lines', 'must be an array');
  return compact<OutputChunk>({
    lines: o.lines.map((l, i) => {
      const x = obj(l, `output.lines[${i}]`);
      return {
        seq: int(x.seq, `output.lines[${i}].seq`),
        time: time(x.time, `output.lines[${i}].time`),
        line: str(x.line, `output.lines[${i}].line`, 64 * 1024),
      };
    }),
    end: opt(o.end, (b) => bool(b, 'output.end')),
  });
}

export function parseInstance(v: unknown): InstanceRecord {
  const o = obj(v, 'instance');
  return { id: str(o.id, 'instance.id', 200), startedAt: time(o.startedAt, 'instance.startedAt') };
}

/** Reads a record strictly: bad JSON or a bad field is `FLOTILLA_CONTROLLER_INVALID_RECORD` naming the key. */
export function decode<T>(kv: KeyValue, parse: (v: unknown) => T): T {
  let value: unknown;
  try {
    value = JSON.parse(kv.value);
  } catch (err) {
    throw new ControllerError(
      ControllerErrorCodes.INVALID_RECORD,
      `${kv.key} is not JSON: delete or rewrite it`,
      {
        key: kv.key,
        cause: err,
      },
    );
  }
  try {
    return parse(value);
  } catch (err) {
    if (!(err instanceof RecordFieldError)) throw err;
    throw new ControllerError(
      ControllerErrorCodes.INVALID_RECORD,
      `${kv.key}: ${err.message}; delete or rewrite it`,
      {
        key: kv.key,
        path: err.path,
        cause: err,
      },
    );
  }
}
