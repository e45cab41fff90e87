import { describe, expect, it } from 'vitest';
import { jobRecordWriter } from './job-record-writer.js';
import { type JobRecord, validateJobRecord } from './records.js';

/** The fields a writer shares: all but id and index. */
const sharedOf = (r: JobRecord): Omit<JobRecord, 'id' | 'hostId' | 'index'> =>
  Object.fromEntries(
    Object.entries(r).filter(([k]) => k !== 'id' && k !== 'hostId' && k !== 'index'),
  ) as unknown as Omit<JobRecord, 'id' | 'hostId' | 'index'>;

const record = (over: Partial<JobRecord> = {}): JobRecord => ({
  id: 'web.mjuohukl.c6f44c1.1a',
  app: 'demo',
  release: 'v3',
  type: 'web',
  hostId: 'host-1',
  index: 7,
  resources: { cpu: 100, memory: 256 },
  desired: 'run',
  createdAt: 1_764_000_000_123,
  ...over,
});

describe('jobRecordWriter', () => {
  it('writes what JSON.stringify writes, for every id, host and index of one writer', () => {
    const base = record();
    const write = jobRecordWriter(sharedOf(base));
    for (const [id, hostId, index] of [
      ['web.a', 'host-1', 1],
      ['web.mjuohukl.c6f44c1.zz', 'h', 100_000],
      ['w', 'host-77', 2],
    ] as const) {
      const value = write(id, hostId, index);
      expect(value).toBe(JSON.stringify({ ...base, id, hostId, index }));
      expect(validateJobRecord(JSON.parse(value))).toEqual({ ...base, id, hostId, index });
    }
  });

  it('escapes strings as JSON.stringify does, and writes stopReason in its place', () => {
    const base = record({
      app: 'a"b\\c\u0000\u2028日',
      desired: 'stop',
      stopReason: 'scaled-down',
      resources: { cpu: 0.5, memory: 1e3 },
    });
    const write = jobRecordWriter(sharedOf(base));
    expect(write('x"y', 'h\\1', 3)).toBe(
      JSON.stringify({ ...base, id: 'x"y', hostId: 'h\\1', index: 3 }),
    );
    expect(JSON.parse(write('x"y', 'h\\1', 3))).toEqual({
      ...base,
      id: 'x"y',
      hostId: 'h\\1',
      index: 3,
    });
  });

  it('writes what JSON.stringify writes for ids that need escaping or are unusual, and odd indexes', () => {
    const base = record();
    const write = jobRecordWriter(sharedOf(base));
    const odd = ['a\u0001b', 'a\u001fb', 'a\u007fb', 'x\ud800y', 'x\udfffy', '😀', 'é', '', 'a\nb'];
    for (const id of odd)
      for (const hostId of ['host-1', ...odd])
        expect(write(id, hostId, 2)).toBe(JSON.stringify({ ...base, id, hostId, index: 2 }));
    for (const index of [0, 1.5, -3, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e21])
      expect(write('web.1', 'host-1', index)).toBe(
        JSON.stringify({ ...base, id: 'web.1', hostId: 'host-1', index }),
      );
  });
});
