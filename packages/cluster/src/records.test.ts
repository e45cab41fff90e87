import type { KeyValue } from '@flotilla/store';
import { describe, expect, it } from 'vitest';
import { decodeRecord, type ClusterRecord } from './decode.js';
import { ClusterError } from './errors.js';
import { ClusterKeys } from './keys.js';
import {
  hostState,
  jobState,
  MAX_PROCESS_COUNT,
  MAX_RESOURCE,
  validateFormation,
  validateHeartbeat,
  validateHostAlloc,
  validateHostControl,
  validateHostRecord,
  validateJobRecord,
  validateJobStatus,
  validateReleaseRecord,
  validateSchedulerEpoch,
  type Formation,
  type HostRecord,
  type JobRecord,
  type JobStatus,
  type ReleaseRecord,
} from './records.js';

const keys = new ClusterKeys();

function kv(key: string, value: string): KeyValue {
  return { key, value, createRevision: 1, modRevision: 1, version: 1 };
}

function decode(key: string, value: unknown): ClusterRecord | undefined {
  return decodeRecord(keys, kv(key, typeof value === 'string' ? value : JSON.stringify(value)));
}

function thrown(fn: () => unknown): ClusterError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClusterError) return err;
    throw err;
  }
  throw new Error('expected a ClusterError');
}

const host: HostRecord = {
  id: 'h1',
  addr: '127.0.0.1:7000',
  tags: { zone: 'a', 'disk/type': 'ssd' },
  capacity: { cpu: 4000, memory: 8192 },
  registeredAt: 1_700_000_000_000,
};

const formation: Formation = {
  app: 'demo',
  release: 'v1',
  processes: {
    web: { count: 2, resources: { cpu: 250, memory: 256 }, constraints: { zone: 'a' } },
    worker: { count: 0, resources: { cpu: 5, memory: 64 }, omni: true },
  },
};

const release: ReleaseRecord = {
  app: 'demo',
  release: 'v1',
  artifact: {
    type: 'slug',
    url: 'https://slugs.example/demo/v1.tgz',
    sha256: 'a'.repeat(64),
    size: 1024,
  },
  config: { DATABASE_URL: 'postgres://db/demo', _PRIVATE: '', LOG_LEVEL: 'info' },
  processes: {
    web: {
      command: 'node server.js --port $PORT',
      healthCheck: { type: 'http', path: '/healthz', status: 200, intervalMs: 1000 },
      stopGraceMs: 10_000,
    },
    worker: { command: 'node worker.js', healthCheck: { type: 'tcp', graceMs: 0 } },
  },
  createdAt: 1_700_000_000_000,
};

const imageRelease: ReleaseRecord = {
  ...release,
  release: 'v2',
  artifact: { type: 'image', image: 'registry.local:5000/flotilla/demo:v2' },
};

const job: JobRecord = {
  id: 'j1',
  app: 'demo',
  release: 'v1',
  type: 'web',
  hostId: 'h1',
  index: 1,
  resources: { cpu: 250, memory: 256 },
  desired: 'stop',
  stopReason: 'scaled-down',
  createdAt: 1_700_000_000_000,
};

const status: JobStatus = {
  state: 'crashed',
  startedAt: 1_700_000_000_000,
  finishedAt: 1_700_000_001_000,
  exitStatus: 1,
  signal: 'SIGKILL',
  port: 5000,
  message: 'exited 1: cannot connect to the database',
  updatedAt: 1_700_000_001_000,
};

describe('records round-trip: validate -> JSON -> decodeRecord', () => {
  const cases: [string, string, (v: unknown) => unknown, unknown, object][] = [
    ['host', keys.host('h1'), validateHostRecord, host, { hostId: 'h1' }],
    [
      'host without tags',
      keys.host('h1'),
      validateHostRecord,
      { ...host, tags: undefined },
      { hostId: 'h1' },
    ],
    [
      'heartbeat',
      keys.heartbeat('h1'),
      validateHeartbeat,
      { at: 5, lease: '7587' },
      { hostId: 'h1' },
    ],
    [
      'host-control',
      keys.hostControl('h1'),
      validateHostControl,
      { eligible: false, drain: true, reason: 'disk replacement', updatedAt: 9 },
      { hostId: 'h1' },
    ],
    [
      'alloc',
      keys.alloc('h1'),
      validateHostAlloc,
      { jobs: 3, cpu: 750, memory: 768, by: 's1' },
      { hostId: 'h1' },
    ],
    [
      'formation',
      keys.formation('demo', 'v1'),
      validateFormation,
      formation,
      { app: 'demo', release: 'v1' },
    ],
    [
      'release (slug)',
      keys.release('demo', 'v1'),
      validateReleaseRecord,
      release,
      { app: 'demo', release: 'v1' },
    ],
    [
      'release (image)',
      keys.release('demo', 'v2'),
      validateReleaseRecord,
      imageRelease,
      { app: 'demo', release: 'v2' },
    ],
    ['job', keys.job('h1', 'j1'), validateJobRecord, job, { hostId: 'h1', jobId: 'j1' }],
    [
      'job-status',
      keys.jobStatus('h1', 'j1'),
      validateJobStatus,
      status,
      { hostId: 'h1', jobId: 'j1' },
    ],
    [
      'job-status (minimal)',
      keys.jobStatus('h1', 'j1'),
      validateJobStatus,
      { state: 'starting', updatedAt: 0 },
      { hostId: 'h1', jobId: 'j1' },
    ],
    ['scheduler-epoch', keys.schedulerEpoch, validateSchedulerEpoch, { members: ['s1', 's2'] }, {}],
  ];

  it.each(cases)('%s', (_, key, validate, input, ids) => {
    const record = validate(input);
    // What a writer stores is what a reader gets, field for field.
    expect(record).toEqual(JSON.parse(JSON.stringify(input)));
    const decoded = decode(key, JSON.stringify(record));
    expect(decoded).toEqual({ kind: keys.parse(key)?.kind, ...ids, record });
  });

  it('a scheduler membership key decodes to its id, whatever its value', () => {
    expect(decode(keys.scheduler('s1'), 'anything')).toEqual({
      kind: 'scheduler',
      schedulerId: 's1',
    });
  });

  it('a key outside the layout decodes to undefined, not an error', () => {
    expect(decode('elsewhere/hosts/h1', 'not json')).toBeUndefined();
  });

  it('validators drop unknown fields and normalise, so equal records serialise alike', () => {
    expect(validateHostRecord({ ...host, state: 'up', extra: 1 })).toEqual(host);
    expect(validateSchedulerEpoch({ members: ['s2', 's1', 's2'] })).toEqual({
      members: ['s1', 's2'],
    });
    const reordered: ReleaseRecord = {
      ...release,
      config: Object.fromEntries(Object.entries(release.config).reverse()),
      processes: Object.fromEntries(Object.entries(release.processes).reverse()),
    };
    expect(JSON.stringify(validateReleaseRecord(reordered))).toBe(
      JSON.stringify(validateReleaseRecord(release)),
    );
  });
});

/** A bad record: where it is stored, its text, and the field the error should name. */
type Bad = [what: string, key: string, value: string, path: string | undefined];

const json = (v: unknown): string => JSON.stringify(v);
const jobKey = keys.job('h1', 'j1');
const statusKey = keys.jobStatus('h1', 'j1');
const formationKey = keys.formation('demo', 'v1');
const releaseKey = keys.release('demo', 'v1');
const web = formation.processes.web as Formation['processes'][string];

const BAD: Bad[] = [
  // Not JSON, or not an object.
  ['bad JSON', keys.host('h1'), '{"id": "h1",', undefined],
  ['an empty value', jobKey, '', undefined],
  ['a JSON array', keys.host('h1'), '[]', 'host'],
  ['JSON null', jobKey, 'null', 'job'],
  ['a JSON string', keys.heartbeat('h1'), '"alive"', 'heartbeat'],
  // Missing fields.
  [
    'a host without capacity',
    keys.host('h1'),
    json({ ...host, capacity: undefined }),
    'host.capacity',
  ],
  ['a host without addr', keys.host('h1'), json({ ...host, addr: undefined }), 'host.addr'],
  ['a host with a blank addr', keys.host('h1'), json({ ...host, addr: '  ' }), 'host.addr'],
  ['a job without desired', jobKey, json({ ...job, desired: undefined }), 'job.desired'],
  ['a job without an index', jobKey, json({ ...job, index: undefined }), 'job.index'],
  ['a status without updatedAt', statusKey, json({ state: 'up' }), 'jobStatus.updatedAt'],
  [
    'a release without artifact',
    releaseKey,
    json({ ...release, artifact: undefined }),
    'release.artifact',
  ],
  [
    'a formation without processes',
    formationKey,
    json({ app: 'demo', release: 'v1' }),
    'formation.processes',
  ],
  [
    'a host-control without drain',
    keys.hostControl('h1'),
    json({ eligible: true, updatedAt: 1 }),
    'hostControl.drain',
  ],
  ['a heartbeat without lease', keys.heartbeat('h1'), json({ at: 1 }), 'heartbeat.lease'],
  ['an alloc without by', keys.alloc('h1'), json({ jobs: 1, cpu: 1, memory: 1 }), 'alloc.by'],
  ['an epoch without members', keys.schedulerEpoch, json({}), 'epoch.members'],
  // Unknown enum values.
  ['an unknown desired', jobKey, json({ ...job, desired: 'pause' }), 'job.desired'],
  ['an unknown stopReason', jobKey, json({ ...job, stopReason: 'bored' }), 'job.stopReason'],
  ['an unknown job state', statusKey, json({ ...status, state: 'running' }), 'jobStatus.state'],
  [
    'an unknown artifact type',
    releaseKey,
    json({ ...release, artifact: { type: 'zip' } }),
    'release.artifact.type',
  ],
  [
    'an unknown health check type',
    releaseKey,
    json({ ...release, processes: { web: { command: 'x', healthCheck: { type: 'udp' } } } }),
    'release.processes.web.healthCheck.type',
  ],
  // Numbers: negative, overflowing to Infinity, fractional where whole, over the maximum.
  [
    'a negative cpu',
    keys.host('h1'),
    json({ ...host, capacity: { cpu: -1, memory: 1 } }),
    'host.capacity.cpu',
  ],
  [
    'an infinite memory (1e999)',
    keys.host('h1'),
    json(host).replace('8192', '1e999'),
    'host.capacity.memory',
  ],
  [
    'a cpu over MAX_RESOURCE',
    jobKey,
    json({ ...job, resources: { cpu: MAX_RESOURCE * 2, memory: 1 } }),
    'job.resources.cpu',
  ],
  ['a string for a number', jobKey, json({ ...job, index: '1' }), 'job.index'],
  ['a fractional index', jobKey, json({ ...job, index: 1.5 }), 'job.index'],
  ['an index of 0', jobKey, json({ ...job, index: 0 }), 'job.index'],
  ['a negative createdAt', jobKey, json({ ...job, createdAt: -1 }), 'job.createdAt'],
  ['a port of 70000', statusKey, json({ ...status, port: 70_000 }), 'jobStatus.port'],
  [
    'a negative alloc',
    keys.alloc('h1'),
    json({ jobs: -1, cpu: 1, memory: 1, by: 's1' }),
    'alloc.jobs',
  ],
  [
    'a negative slug size',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, size: -1 } }),
    'release.artifact.size',
  ],
  // Formations.
  [
    'zero cpu in a formation',
    formationKey,
    json({ ...formation, processes: { web: { ...web, resources: { cpu: 0, memory: 256 } } } }),
    'formation.processes.web.resources',
  ],
  [
    'zero memory in a formation',
    formationKey,
    json({ ...formation, processes: { web: { ...web, resources: { cpu: 100, memory: 0 } } } }),
    'formation.processes.web.resources',
  ],
  [
    'a count over MAX_PROCESS_COUNT',
    formationKey,
    json({ ...formation, processes: { web: { ...web, count: MAX_PROCESS_COUNT + 1 } } }),
    'formation.processes.web.count',
  ],
  [
    'a negative count',
    formationKey,
    json({ ...formation, processes: { web: { ...web, count: -1 } } }),
    'formation.processes.web.count',
  ],
  [
    'a process type with a slash',
    formationKey,
    json({ ...formation, processes: { 'web/x': web } }),
    'formation.processes.web/x',
  ],
  [
    'a bad constraint name',
    formationKey,
    json({ ...formation, processes: { web: { ...web, constraints: { 'a b': 'x' } } } }),
    'formation.processes.web.constraints.a b',
  ],
  // Ids in the record that do not match the key (the cause names the field).
  ['a host id unlike its key', keys.host('h1'), json({ ...host, id: 'h2' }), 'host.id'],
  ['a job id unlike its key', jobKey, json({ ...job, id: 'j2' }), 'job.id'],
  ['a job on another host than its key', jobKey, json({ ...job, hostId: 'h2' }), 'job.hostId'],
  [
    'a formation of another app',
    formationKey,
    json({ ...formation, app: 'other' }),
    'formation.app',
  ],
  [
    'a formation of another release',
    formationKey,
    json({ ...formation, release: 'v2' }),
    'formation.release',
  ],
  ['a release of another app', releaseKey, json({ ...release, app: 'other' }), 'release.app'],
  [
    'a release of another release',
    releaseKey,
    json({ ...release, release: 'v9' }),
    'release.release',
  ],
  ['an invalid id in the record', jobKey, json({ ...job, app: '../etc' }), 'job.app'],
  // Release artifacts and config.
  [
    'an uppercase sha256',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, sha256: 'A'.repeat(64) } }),
    'release.artifact.sha256',
  ],
  [
    'a short sha256',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, sha256: 'a'.repeat(63) } }),
    'release.artifact.sha256',
  ],
  [
    'a long sha256',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, sha256: 'a'.repeat(65) } }),
    'release.artifact.sha256',
  ],
  [
    'an ftp:// url',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, url: 'ftp://x/y.tgz' } }),
    'release.artifact.url',
  ],
  [
    'a relative url',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, url: 'slugs/v1.tgz' } }),
    'release.artifact.url',
  ],
  [
    'a javascript: url',
    releaseKey,
    json({ ...release, artifact: { ...release.artifact, url: 'javascript:alert(1)' } }),
    'release.artifact.url',
  ],
  [
    'a config name with a dash',
    releaseKey,
    json({ ...release, config: { 'A-B': '1' } }),
    'release.config',
  ],
  [
    'a config name starting with a digit',
    releaseKey,
    json({ ...release, config: { '1A': '1' } }),
    'release.config',
  ],
  ['an empty config name', releaseKey, json({ ...release, config: { '': '1' } }), 'release.config'],
  [
    'a config name with =',
    releaseKey,
    json({ ...release, config: { 'A=B': '1' } }),
    'release.config',
  ],
  [
    'a config value that is not a string',
    releaseKey,
    json({ ...release, config: { A: 1 } }),
    'release.config.A',
  ],
  [
    'a NUL in a config value',
    releaseKey,
    json({ ...release, config: { A: 'a\u0000b' } }),
    'release.config.A',
  ],
  [
    'an empty command',
    releaseKey,
    json({ ...release, processes: { web: { command: ' ' } } }),
    'release.processes.web.command',
  ],
  [
    'a health check path without /',
    releaseKey,
    json({
      ...release,
      processes: { web: { command: 'x', healthCheck: { type: 'http', path: 'healthz' } } },
    }),
    'release.processes.web.healthCheck.path',
  ],
  // Huge values and NUL bytes.
  ['a NUL in an addr', keys.host('h1'), json({ ...host, addr: 'a\u0000b' }), 'host.addr'],
  [
    'a 1 MiB message',
    statusKey,
    json({ ...status, message: 'x'.repeat(1 << 20) }),
    'jobStatus.message',
  ],
  [
    '65 tags',
    keys.host('h1'),
    json({
      ...host,
      tags: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`t${i}`, 'x'])),
    }),
    'host.tags',
  ],
  [
    'a tag value of 257 characters',
    keys.host('h1'),
    json({ ...host, tags: { zone: 'x'.repeat(257) } }),
    'host.tags.zone',
  ],
];

describe('decodeRecord refuses bad records', () => {
  it.each(BAD)('%s', (_, key, value, path) => {
    const err = thrown(() => decodeRecord(keys, kv(key, value)));
    expect(err.code).toBe('FLOTILLA_CLUSTER_INVALID_RECORD');
    expect(err.key).toBe(key);
    expect(err.cause).toBeInstanceOf(Error);
    expect(err.message).toContain(key);
    if (path !== undefined) {
      expect(err.path).toBe(path);
      expect(err.cause).toMatchObject({ code: 'FLOTILLA_CLUSTER_INVALID_RECORD', path });
    } else {
      expect(err.cause).toBeInstanceOf(SyntaxError);
    }
  });

  it('refuses a record under a malformed key of a known kind', () => {
    const err = thrown(() => decodeRecord(keys, kv('cluster/jobs/h1/j1/extra', json(job))));
    expect(err).toMatchObject({
      code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
      key: 'cluster/jobs/h1/j1/extra',
    });
  });
});

describe('validators refuse what writers hand them', () => {
  // JSON cannot carry these, but a writer's object can.
  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['a negative number', -5],
    ['a bigint', 5n],
  ])('a cpu of %s', (_, cpu) => {
    for (const check of [
      () => validateHostRecord({ ...host, capacity: { cpu, memory: 1 } }),
      () => validateJobRecord({ ...job, resources: { cpu, memory: 1 } }),
      () =>
        validateFormation({
          ...formation,
          processes: { web: { ...web, resources: { cpu, memory: 1 } } },
        }),
    ]) {
      expect(thrown(check)).toMatchObject({
        code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
        path: expect.stringMatching(/resources\.cpu$|capacity\.cpu$/),
      });
    }
  });

  it('a time of NaN, Infinity or before the epoch', () => {
    for (const at of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      expect(thrown(() => validateJobStatus({ state: 'up', updatedAt: at }))).toMatchObject({
        code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
        path: 'jobStatus.updatedAt',
      });
    }
  });

  it('a config var named __proto__ is refused, not dropped', () => {
    const config = JSON.parse('{"__proto__": "x", "A": "1"}') as Record<string, string>;
    expect(thrown(() => validateReleaseRecord({ ...release, config }))).toMatchObject({
      code: 'FLOTILLA_CLUSTER_INVALID_RECORD',
      path: 'release.config',
    });
  });

  it('an image reference that a container engine would read as flags or several words', () => {
    for (const image of ['--privileged', '-v /:/host demo', 'demo:v1 --rm', 'demo\nv1', '']) {
      expect(
        thrown(() => validateReleaseRecord({ ...release, artifact: { type: 'image', image } })),
        JSON.stringify(image),
      ).toMatchObject({ code: 'FLOTILLA_CLUSTER_INVALID_RECORD', path: 'release.artifact.image' });
    }
  });

  it('a release whose config is too large for one store value is still a valid record', () => {
    // The store, not the validator, bounds the whole record (FLOTILLA_STORE_TOO_LARGE).
    const big = { ...release, config: { A: 'x'.repeat(256 * 1024) } };
    expect(validateReleaseRecord(big).config.A).toHaveLength(256 * 1024);
    expect(
      thrown(() =>
        validateReleaseRecord({ ...release, config: { A: 'x'.repeat(256 * 1024 + 1) } }),
      ),
    ).toMatchObject({ path: 'release.config.A' });
  });
});

describe('derived states', () => {
  const up = (state: JobStatus['state']): JobStatus => ({ state, updatedAt: 1 });

  it('jobState: the scheduler wants, the agent observed', () => {
    expect(jobState({ desired: 'run' }, undefined)).toBe('pending');
    expect(jobState({ desired: 'stop' }, undefined)).toBe('stopping');
    expect(jobState({ desired: 'run' }, up('starting'))).toBe('starting');
    expect(jobState({ desired: 'run' }, up('up'))).toBe('up');
    expect(jobState({ desired: 'stop' }, up('starting'))).toBe('stopping');
    expect(jobState({ desired: 'stop' }, up('up'))).toBe('stopping');
    for (const desired of ['run', 'stop'] as const) {
      expect(jobState({ desired }, up('down'))).toBe('down');
      expect(jobState({ desired }, up('crashed'))).toBe('crashed');
    }
  });

  it('hostState: down without a heartbeat, whatever the operator said; drain before eligibility', () => {
    const control = (eligible: boolean, drain: boolean) => ({ eligible, drain, updatedAt: 1 });
    expect(hostState(true, undefined)).toBe('up');
    expect(hostState(true, control(true, false))).toBe('up');
    expect(hostState(true, control(false, false))).toBe('ineligible');
    expect(hostState(true, control(true, true))).toBe('draining');
    expect(hostState(true, control(false, true))).toBe('draining');
    expect(hostState(false, undefined)).toBe('down');
    expect(hostState(false, control(true, true))).toBe('down');
  });
});
