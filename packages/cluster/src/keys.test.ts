import fc from 'fast-check';
import { compareKeys } from '@flotilla/store';
import { describe, expect, it } from 'vitest';
import { ClusterError } from './errors.js';
import { isValidId, MAX_ID_LENGTH, validateId } from './ids.js';
import { ClusterKeys, type ClusterKey } from './keys.js';

const keys = new ClusterKeys();

/** Ids no key may hold: each would not read back as itself, or would split or escape its key. */
const BAD_IDS: readonly [string, unknown][] = [
  ['a slash', 'a/b'],
  ['only a slash', '/'],
  ['empty', ''],
  ['dot-dot', '..'],
  ['dot', '.'],
  ['a leading dot', '.hidden'],
  ['a NUL', 'a\u0000b'],
  ['a space', 'a b'],
  ['a leading space', ' a'],
  ['a trailing newline', 'a\n'],
  ['a tab', 'a\tb'],
  ['201 characters', 'x'.repeat(MAX_ID_LENGTH + 1)],
  ['a non-ASCII letter', 'caf\u00e9'],
  ['a number', 42],
  ['undefined', undefined],
  ['null', null],
  ['an object', { toString: () => 'host-1' }],
];

/** Every key builder, called with `bad` in each id position in turn. */
const BUILDERS: readonly [string, (bad: string) => string][] = [
  ['host', (b) => keys.host(b)],
  ['heartbeat', (b) => keys.heartbeat(b)],
  ['hostControl', (b) => keys.hostControl(b)],
  ['alloc', (b) => keys.alloc(b)],
  ['scheduler', (b) => keys.scheduler(b)],
  ['jobsOf', (b) => keys.jobsOf(b)],
  ['jobStatusesOf', (b) => keys.jobStatusesOf(b)],
  ['formationsOf', (b) => keys.formationsOf(b)],
  ['releasesOf', (b) => keys.releasesOf(b)],
  ['formation(app)', (b) => keys.formation(b, 'v1')],
  ['formation(release)', (b) => keys.formation('demo', b)],
  ['release(app)', (b) => keys.release(b, 'v1')],
  ['release(release)', (b) => keys.release('demo', b)],
  ['job(host)', (b) => keys.job(b, 'j1')],
  ['job(job)', (b) => keys.job('h1', b)],
  ['jobStatus(host)', (b) => keys.jobStatus(b, 'j1')],
  ['jobStatus(job)', (b) => keys.jobStatus('h1', b)],
];

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('ids', () => {
  it.each(BAD_IDS)('refuses an id with %s', (_, bad) => {
    expect(isValidId(bad)).toBe(false);
    const err = thrown(() => validateId('host', bad));
    expect(err).toBeInstanceOf(ClusterError);
    expect(err).toMatchObject({ code: 'FLOTILLA_CLUSTER_INVALID_ID', path: 'host' });
  });

  it('accepts ids of 1 to 200 characters from the allowed set', () => {
    for (const good of ['a', '0', 'web.1', 'demo_app', 'v1-2', 'user@host', 'sha:1+2']) {
      expect(isValidId(good), good).toBe(true);
    }
    expect(isValidId('x'.repeat(MAX_ID_LENGTH))).toBe(true);
  });

  it('says why an id is refused', () => {
    expect(thrown(() => validateId('app', 'a/b'))).toHaveProperty(
      'message',
      expect.stringContaining('contains "/"'),
    );
    expect(thrown(() => validateId('app', 'x'.repeat(300)))).toHaveProperty(
      'message',
      expect.stringContaining('300 characters long'),
    );
  });
});

describe('ClusterKeys builders', () => {
  for (const [builder, build] of BUILDERS) {
    it.each(BAD_IDS)(`${builder} refuses an id with %s`, (_, bad) => {
      expect(thrown(() => build(bad as string))).toMatchObject({
        code: 'FLOTILLA_CLUSTER_INVALID_ID',
      });
    });
  }

  it('lays keys out under the prefix', () => {
    expect(keys.host('h1')).toBe('cluster/hosts/h1');
    expect(keys.heartbeat('h1')).toBe('cluster/heartbeats/h1');
    expect(keys.hostControl('h1')).toBe('cluster/host-control/h1');
    expect(keys.alloc('h1')).toBe('cluster/alloc/h1');
    expect(keys.formation('demo', 'v1')).toBe('cluster/formations/demo/v1');
    expect(keys.release('demo', 'v1')).toBe('cluster/releases/demo/v1');
    expect(keys.job('h1', 'j1')).toBe('cluster/jobs/h1/j1');
    expect(keys.jobStatus('h1', 'j1')).toBe('cluster/job-status/h1/j1');
    expect(keys.scheduler('s1')).toBe('cluster/coordination/schedulers/s1');
    expect(keys.schedulerEpoch).toBe('cluster/coordination/scheduler-epoch');
    expect(new ClusterKeys('x/').host('h1')).toBe('x/hosts/h1');
  });

  it('puts every key a scheduler reads before jobs/, but job records and releases', () => {
    // A sole scheduler watches up to `jobs` (it writes every job record itself): whatever else
    // it reads must sort before that, or its watch would miss it.
    const read = [
      keys.host('h'),
      keys.heartbeat('h'),
      keys.hostControl('h'),
      keys.alloc('h'),
      keys.formation('a', 'v1'),
      keys.jobStatus('h', 'j'),
      keys.scheduler('s'),
      keys.schedulerEpoch,
    ];
    for (const key of read) expect(compareKeys(key, keys.jobs), key).toBeLessThan(0);
    expect(compareKeys(keys.release('a', 'v1'), keys.jobs)).toBeGreaterThan(0);
  });

  it("a host's prefixes hold its keys only, not those of a host whose id extends it", () => {
    expect(keys.job('h10', 'j1').startsWith(keys.jobsOf('h1'))).toBe(false);
    expect(keys.job('h1', 'j1').startsWith(keys.jobsOf('h1'))).toBe(true);
    expect(keys.jobStatus('h10', 'j1').startsWith(keys.jobStatusesOf('h1'))).toBe(false);
    expect(keys.release('demo2', 'v1').startsWith(keys.releasesOf('demo'))).toBe(false);
  });
});

const anyId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,199}$/);

/** Every key kind: its builder and what parse must give back. */
const KINDS: readonly ((k: ClusterKeys, a: string, b: string) => [string, ClusterKey])[] = [
  (k, a) => [k.host(a), { kind: 'host', hostId: a }],
  (k, a) => [k.heartbeat(a), { kind: 'heartbeat', hostId: a }],
  (k, a) => [k.hostControl(a), { kind: 'host-control', hostId: a }],
  (k, a) => [k.alloc(a), { kind: 'alloc', hostId: a }],
  (k, a, b) => [k.formation(a, b), { kind: 'formation', app: a, release: b }],
  (k, a, b) => [k.release(a, b), { kind: 'release', app: a, release: b }],
  (k, a, b) => [k.job(a, b), { kind: 'job', hostId: a, jobId: b }],
  (k, a, b) => [k.jobStatus(a, b), { kind: 'job-status', hostId: a, jobId: b }],
  (k, a) => [k.scheduler(a), { kind: 'scheduler', schedulerId: a }],
  (k) => [k.schedulerEpoch, { kind: 'scheduler-epoch' }],
];

describe('ClusterKeys.parse', () => {
  it('reads back the ids of every key it builds (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('cluster/', '', 'a/b/', '/flotilla/'),
        fc.integer({ min: 0, max: KINDS.length - 1 }),
        anyId,
        anyId,
        (prefix, kind, a, b) => {
          const k = new ClusterKeys(prefix);
          const [key, want] = (KINDS[kind] as (typeof KINDS)[number])(k, a, b);
          expect(k.parse(key)).toEqual(want);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('returns undefined for keys outside the layout', () => {
    for (const foreign of [
      'other/hosts/h1',
      'cluster',
      'cluster/',
      'cluster/hosts',
      'cluster/unknown/h1',
      'cluster/coordination/scheduler-epoch/x',
      'cluster/coordination/other',
      'clusterx/hosts/h1',
    ]) {
      expect(keys.parse(foreign), foreign).toBeUndefined();
    }
  });

  it('reports malformed keys under a known prefix as invalid, saying which key', () => {
    for (const bad of [
      'cluster/hosts/',
      'cluster/hosts/a/b',
      'cluster/hosts/..',
      'cluster/heartbeats/a b',
      'cluster/host-control/',
      'cluster/alloc/a\u0000',
      'cluster/formations/demo',
      'cluster/formations/demo/v1/x',
      'cluster/releases/demo/',
      'cluster/releases//v1',
      'cluster/jobs/h1',
      'cluster/jobs/h1/',
      'cluster/jobs/h1/j1/extra',
      'cluster/job-status/h1/.',
      `cluster/jobs/h1/${'x'.repeat(201)}`,
      'cluster/coordination/schedulers/',
      'cluster/coordination/schedulers/a/b',
    ]) {
      const parsed = keys.parse(bad);
      expect(parsed, bad).toMatchObject({ kind: 'invalid' });
      expect(parsed && 'reason' in parsed ? parsed.reason : '', bad).toContain(bad);
    }
  });
});
