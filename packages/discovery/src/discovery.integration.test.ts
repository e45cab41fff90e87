// Discovery against a real etcd: a registrant that is SIGKILLed disappears within its TTL plus
// one second of the kill; a graceful close is seen at once; elections hold across separate
// clients.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EtcdStore } from '@flotilla/etcd';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoints, releaseEtcd, startEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { Discovery } from './discovery.js';
import type { DiscoveryEvent } from './instance.js';

const fixture = fileURLToPath(new URL('../test-fixtures/register-child.mjs', import.meta.url));
let endpoints: string[];
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(releaseEtcd);

function open(
  prefix: string,
  on: string[] = endpoints,
): { store: EtcdStore; discovery: Discovery } {
  const store = new EtcdStore({ endpoints: on, prefix });
  const discovery = new Discovery({ store });
  cleanups.push(async () => {
    await discovery.close();
    await store.close();
  });
  return { store, discovery };
}

function watch(discovery: Discovery, service: string): AsyncIterator<DiscoveryEvent> {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  return discovery.watch(service, { signal: controller.signal })[Symbol.asyncIterator]();
}

async function nextEvent(it: AsyncIterator<DiscoveryEvent>): Promise<DiscoveryEvent> {
  const r = await it.next();
  if (r.done === true) throw new Error('watch ended');
  return r.value;
}

async function spawnRegistrant(
  prefix: string,
  id: string,
  ttlMs: number,
  on: string[] = endpoints,
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [fixture, on.join(','), prefix, 'demo-web', id, String(ttlMs)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  if (child.stdout === null) throw new Error('child has no stdout');
  const lines = createInterface({ input: child.stdout });
  const [line] = (await once(lines, 'line')) as [string];
  expect(line).toBe(`registered ${id}`);
  return child;
}

describe('Discovery on etcd', () => {
  it('sees a SIGKILLed registrant (TTL 2000 ms) go down within 3 s of the kill', async () => {
    // The promise: down within the TTL plus a second. What it costs: the registrant's last
    // renewal (up to the TTL before the kill) and etcd's expiry sweep (every 500 ms). To keep
    // the rest of the suite's load out of that margin, the registrant is a process of its own
    // (the test's event loop cannot delay its renewals), and etcd is one of this test's own:
    // other suites' writes and lease expiries (revoked at a bounded rate) cannot queue ahead
    // of this lease's expiry, nor of the watch that reports it.
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    const own = [etcd.endpoint];
    const prefix = uniquePrefix('discovery-kill');
    const { discovery } = open(prefix, own);
    const events = watch(discovery, 'demo-web');
    expect(await nextEvent(events)).toEqual({ kind: 'current', instances: [] });
    const child = await spawnRegistrant(prefix, 'victim', 2000, own);
    expect(await nextEvent(events)).toMatchObject({
      kind: 'up',
      instance: { id: 'victim', ready: true },
    });

    const killedAt = performance.now();
    child.kill('SIGKILL');
    const ev = await nextEvent(events);
    const elapsed = performance.now() - killedAt;
    expect(ev).toMatchObject({ kind: 'down', instance: { id: 'victim' } });
    expect(elapsed).toBeLessThan(3000);
    expect(child.signalCode).toBe('SIGKILL');
    expect(await discovery.instances('demo-web')).toEqual([]);
  });

  it('sees a graceful close as down at once, long before the TTL', async () => {
    // 'At once' is held to a second: measured on an etcd of this test's own, for the reason
    // given above (on the shared one, the revoke and its watch event queue behind the writes
    // of every suite running meanwhile).
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    const { discovery } = open(uniquePrefix('discovery-close'), [etcd.endpoint]);
    const events = watch(discovery, 'demo-web');
    await nextEvent(events);
    const reg = await discovery.register({
      service: 'demo-web',
      addr: '127.0.0.1:5002',
      ttlMs: 30_000,
    });
    await nextEvent(events);
    const t0 = performance.now();
    await reg.close();
    expect(await nextEvent(events)).toMatchObject({ kind: 'down', instance: { id: reg.id } });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('elects one leader among clients with separate connections, and hands over on resign', async () => {
    const prefix = uniquePrefix('discovery-elect');
    const candidates = ['a', 'b', 'c'].map((id) =>
      open(prefix).discovery.elect('scheduler', { id, ttlMs: 2000 }),
    );
    const first = await Promise.race(candidates.map((c) => c.waitForLeadership().then(() => c)));
    expect(candidates.filter((c) => c.isLeader)).toEqual([first]);
    await first.resign();
    const second = await Promise.race(
      candidates.filter((c) => c !== first).map((c) => c.waitForLeadership().then(() => c)),
    );
    expect(second).not.toBe(first);
    expect(candidates.filter((c) => c.isLeader)).toEqual([second]);
  });
});
