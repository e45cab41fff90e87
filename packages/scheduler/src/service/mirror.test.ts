// A known job reads its snapshot from its record; serialised or logged, it shows all of it.
import type { JobRecord } from '@flotilla/cluster';
import { describe, expect, it } from 'vitest';
import { KnownJob } from './mirror.js';

const record: JobRecord = {
  id: 'web.1.abc',
  app: 'demo',
  release: 'v1',
  type: 'web',
  hostId: 'h1',
  index: 1,
  resources: { cpu: 100, memory: 256 },
  desired: 'run',
  createdAt: 1_700_000_000_000,
};

describe('KnownJob', () => {
  it('reads its snapshot from its record, and JSON shows the snapshot and revisions', () => {
    const job = new KnownJob(record, 7, 'pending', undefined, 0);
    expect([job.id, job.app, job.release, job.type, job.hostId]).toEqual([
      'web.1.abc',
      'demo',
      'v1',
      'web',
      'h1',
    ]);
    expect(JSON.parse(JSON.stringify(job))).toEqual({
      id: 'web.1.abc',
      app: 'demo',
      release: 'v1',
      type: 'web',
      hostId: 'h1',
      resources: { cpu: 100, memory: 256 },
      createdAt: 1_700_000_000_000,
      state: 'pending',
      rev: 7,
      statusRev: 0,
    });
    const held = job.withState('up');
    expect([held.state, held.id, held.rev, job.state]).toEqual(['up', 'web.1.abc', 7, 'pending']);
  });
});
