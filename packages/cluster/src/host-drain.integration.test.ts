// The drain suite on a real etcd: the same tests MemoryStore passes. Fails, never skips, when
// etcd is missing (see test/support/etcd.ts).
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, beforeAll } from 'vitest';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { runHostDrainSuite } from './host-drain.test.js';

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(releaseEtcd);

runHostDrainSuite('etcd', () => new EtcdStore({ endpoints, prefix: uniquePrefix('host-drain') }));
