// `/hosts` over a real ClusterState (MemoryStore): PATCH answers what GET says of that host,
// reading only that host and its jobs; drains take a deadline.
import { ClusterState, MAX_DRAIN_DEADLINE_MS } from '@flotilla/cluster';
import { ManualClock, silentLogger } from '@flotilla/core';
import { MemoryStore, type Store } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiServer } from '../http/api-server.js';
import { Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { hostRoutes } from './hosts.js';

const token = 'test-token-0123456789';
const T0 = Date.UTC(2026, 11, 2);
let store: Store;
let clock: ManualClock;
let cluster: ClusterState;
let agents: ClusterState;
let server: ApiServer;
let url: string;
/** The prefixes the store was asked to list, in order. */
let listed: string[];

beforeEach(async () => {
  const memory = new MemoryStore();
  listed = [];
  // The store as the API sees it, recording what it lists.
  store = new Proxy(memory, {
    get(target, prop, receiver) {
      if (prop === 'list')
        return (prefix: string, ...rest: unknown[]) => {
          listed.push(prefix);
          return (target.list as (...a: unknown[]) => unknown)(prefix, ...rest);
        };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  clock = new ManualClock(T0);
  cluster = new ClusterState({ store, clock });
  agents = new ClusterState({ store: memory });
  const deps = {
    cluster,
    controller: { hosts: (o: { signal?: AbortSignal }) => cluster.hosts(o) },
    logger: silentLogger,
  } as unknown as ApiDeps;
  const routes = new Routes();
  hostRoutes(routes, deps);
  server = new ApiServer({ token, routes, logger: silentLogger });
  const addr = await server.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${addr.port}`;
  server.ready();
  for (const id of ['host-a', 'host-b', 'host-c'])
    await agents.registerHost(
      { id, addr: `127.0.0.1:${7000 + id.length}`, capacity: { cpu: 4000, memory: 8192 } },
      { ttlMs: 600_000 },
    );
  // Jobs on two hosts, one of them over.
  const job = (hostId: string, id: string): string =>
    JSON.stringify({
      id,
      app: 'demo',
      release: 'v1',
      type: 'web',
      hostId,
      index: 1,
      resources: { cpu: 100, memory: 128 },
      desired: 'run',
      createdAt: T0,
    });
  await memory.put(cluster.keys.job('host-a', 'web.1'), job('host-a', 'web.1'));
  await memory.put(cluster.keys.job('host-a', 'web.2'), job('host-a', 'web.2'));
  await memory.put(cluster.keys.job('host-b', 'web.3'), job('host-b', 'web.3'));
  await agents.reportJob('host-a', 'web.2', { state: 'down', finishedAt: T0 });
});

afterEach(async () => {
  await server.close();
  await cluster.close();
  await agents.close();
  await store.close();
});

const patch = (host: string, body: unknown): Promise<Response> =>
  fetch(`${url}/hosts/${host}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const hosts = async (): Promise<Record<string, unknown>[]> =>
  (await (
    await fetch(`${url}/hosts`, { headers: { authorization: `Bearer ${token}` } })
  ).json()) as Record<string, unknown>[];

describe('PATCH /hosts/{host}', () => {
  it('answers what GET /hosts says of that host, reading only that host and its jobs', async () => {
    listed = [];
    const res = await patch('host-a', { drain: true, reason: 'kernel', deadline_ms: 600_000 });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({
      id: 'host-a',
      state: 'draining',
      drain: true,
      drain_deadline: T0 + 600_000,
      drain_forced: false,
      reason: 'kernel',
      jobs: 1,
    });
    // Only host-a's jobs and statuses were listed: no other host, no whole-cluster list.
    expect(listed.sort()).toEqual(
      [cluster.keys.jobsOf('host-a'), cluster.keys.jobStatusesOf('host-a')].sort(),
    );
    expect((await hosts()).find((h) => h.id === 'host-a')).toEqual(answer);
    // The answer of an undrain, of a host without jobs, is GET's too (no deadline fields).
    const b = (await (await patch('host-c', { eligible: false })).json()) as Record<
      string,
      unknown
    >;
    expect(b).toMatchObject({ id: 'host-c', state: 'ineligible', jobs: 0 });
    expect(b).not.toHaveProperty('drain_deadline');
    expect((await hosts()).find((h) => h.id === 'host-c')).toEqual(b);
  });

  it('does not depend on the other hosts: a corrupt record of another host changes nothing', async () => {
    await store.put(cluster.keys.host('host-b'), '{not json');
    await store.put(cluster.keys.job('host-b', 'bad'), '{not json');
    const res = await patch('host-a', { drain: true });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 'host-a', state: 'draining', jobs: 1 });
  });

  it('says forced once the deadline has passed; undrain drops the deadline', async () => {
    await patch('host-a', { drain: true, deadline_ms: 1000 });
    await clock.advance(1000);
    expect((await hosts()).find((h) => h.id === 'host-a')).toMatchObject({
      drain_deadline: T0 + 1000,
      drain_forced: true,
    });
    const undrained = (await (await patch('host-a', { drain: false })).json()) as Record<
      string,
      unknown
    >;
    expect(undrained).toMatchObject({ state: 'up', drain: false });
    expect(undrained).not.toHaveProperty('drain_deadline');
  });

  it('refuses a bad deadline_ms with 422 and writes nothing', async () => {
    for (const body of [
      { drain: true, deadline_ms: 0 },
      { drain: true, deadline_ms: -5 },
      { drain: true, deadline_ms: 1.5 },
      { drain: true, deadline_ms: '10m' },
      { drain: true, deadline_ms: null },
      { drain: true, deadline_ms: MAX_DRAIN_DEADLINE_MS + 1 },
      { drain: true, deadline_ms: 1e308 },
      { drain: false, deadline_ms: 1000 },
      { eligible: false, deadline_ms: 1000 },
    ]) {
      const res = await patch('host-a', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(await res.json()).toMatchObject({ code: 'FLOTILLA_PAAS_INVALID_REQUEST' });
    }
    expect(await store.get(cluster.keys.hostControl('host-a'))).toBeUndefined();
    expect((await patch('host-zz', { drain: true, deadline_ms: 1000 })).status).toBe(404);
  });
});

describe('GET /hosts/{host}', () => {
  const get = (host: string): Promise<Response> =>
    fetch(`${url}/hosts/${host}`, { headers: { authorization: `Bearer ${token}` } });

  it("answers GET /hosts's entry for that host, reading only that host's jobs", async () => {
    listed = [];
    const res = await get('host-a');
    expect(res.status).toBe(200);
    const answer = (await res.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({ id: 'host-a', jobs: 1 });
    expect(listed.sort()).toEqual(
      [cluster.keys.jobsOf('host-a'), cluster.keys.jobStatusesOf('host-a')].sort(),
    );
    expect((await hosts()).find((h) => h.id === 'host-a')).toEqual(answer);
  });

  it('is a 404 for a host that does not exist, and a 422 for a bad id', async () => {
    const missing = await get('host-z');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'FLOTILLA_PAAS_NOT_FOUND' });
    expect((await get('a%2Fb')).status).toBe(422);
  });
});
