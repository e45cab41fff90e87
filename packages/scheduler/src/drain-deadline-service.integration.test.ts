// The drain-deadline suite of the Scheduler on a real etcd with the system clock: the same
// cases MemoryStore passes, the deadline passing in real time. Fails, never skips, when etcd is
// missing (see test/support/etcd.ts).
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, beforeAll } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { runDrainDeadlineServiceSuite } from './drain-deadline-service.test.js';

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(releaseEtcd);

runDrainDeadlineServiceSuite(
  'etcd (system clock)',
  () => new EtcdStore({ endpoints, prefix: uniquePrefix('drain-deadline') }),
  () => ({ deadlineMs: 1000 }),
);
