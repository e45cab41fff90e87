// Registrations against an etcd of their own that the tests restart (cleanly and by SIGKILL)
// and wipe: owners of leased keys keep or re-create them by themselves.
import { EtcdStore } from '@flotilla/etcd';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startEtcd, type TestEtcd } from '../../../test/support/etcd.js';
import { Discovery } from './discovery.js';
import type { DiscoveryEvent } from './instance.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function cluster(): Promise<{ etcd: TestEtcd; open: () => Discovery }> {
  const etcd = await startEtcd();
  cleanups.push(() => etcd.stop());
  const open = (): Discovery => {
    const store = new EtcdStore({
      endpoints: [etcd.endpoint],
      prefix: '/restart/',
      requestTimeoutMs: 1000,
    });
    const discovery = new Discovery({ store });
    cleanups.push(async () => {
      await discovery.close().catch(() => undefined);
      await store.close();
    });
    return discovery;
  };
  return { etcd, open };
}

/** The instance every test registers. */
const ttlMs = 2000;
const r1 = { service: 'demo-web', addr: '127.0.0.1:5001', id: 'r1', ttlMs, ready: true } as const;

describe('Discovery across etcd restarts', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'keeps a registration through a %s restart of etcd with its data',
    async (signal) => {
      const { etcd, open } = await cluster();
      const reg = await open().register(r1);
      const lost: string[] = [];
      reg.on('lost', (why) => lost.push(why));
      const observer = open();
      const controller = new AbortController();
      cleanups.push(() => controller.abort());
      const seen: DiscoveryEvent[] = [];
      const watching = (async () => {
        for await (const ev of observer.watch('demo-web', { signal: controller.signal })) {
          seen.push(ev);
        }
      })();
      // vi.waitFor gives up after 1 s by default: too short for a first watch event on a loaded CI.
      await vi.waitFor(() => expect(seen).toHaveLength(1), 10_000);
      await etcd.restart(signal);
      // etcd gives every lease a fresh TTL when it starts, so right after the restart the
      // instance is listed whatever its registrant does. Only past several TTLs does it show
      // that heartbeats resumed: the lease was never lost, and nobody saw it go down.
      await sleep(3 * ttlMs);
      expect(lost).toEqual([]);
      expect(reg.state).toBe('registered');
      expect(await observer.instances('demo-web')).toEqual([
        expect.objectContaining({ id: 'r1', ready: true }),
      ]);
      await reg.update({ meta: { after: 'restart' } });
      expect((await observer.instances('demo-web'))[0]?.meta).toEqual({ after: 'restart' });
      await vi.waitFor(() => expect(seen).toHaveLength(2), 10_000);
      expect(seen).toEqual([
        { kind: 'current', instances: [expect.objectContaining({ id: 'r1' })] },
        { kind: 'update', instance: expect.objectContaining({ meta: { after: 'restart' } }) },
      ]);
      controller.abort();
      await watching;
    },
    40_000,
  );

  it('re-registers by itself when etcd comes back without its data', async () => {
    const { etcd, open } = await cluster();
    const reg = await open().register({ ...r1, meta: { release: 'v3' } });
    const restored = new Promise((resolve) => reg.once('restored', resolve));
    const lost = new Promise<string>((resolve) => reg.once('lost', resolve));
    // Wipe: a new etcd with empty data on the same ports.
    await etcd.halt();
    const wiped = await startEtcd({ clientPort: etcd.clientPort, peerPort: etcd.peerPort });
    cleanups.push(() => wiped.stop());
    expect(await lost).toBe('lease expired');
    await restored;
    expect(reg.state).toBe('registered');
    const observer = open();
    expect(await observer.instances('demo-web')).toEqual([
      expect.objectContaining({ id: 'r1', ready: true, meta: { release: 'v3' } }),
    ]);
  }, 30_000);

  it('comes back by itself after etcd was frozen (SIGSTOP) past its TTL, then thawed', async () => {
    const { etcd, open } = await cluster();
    const reg = await open().register(r1);
    const lost: string[] = [];
    reg.on('lost', (why) => lost.push(why));
    await etcd.halt('SIGSTOP');
    await sleep(2.5 * ttlMs); // calls time out; the client's deadline for the lease passes
    await etcd.resume();
    const observer = open();
    // Listed again, by one lease only, and kept past several TTLs.
    await vi.waitFor(async () => {
      expect(reg.state).toBe('registered');
      expect(await observer.instances('demo-web')).toEqual([
        expect.objectContaining({ id: 'r1', ready: true }),
      ]);
    }, 10_000);
    await sleep(2 * ttlMs);
    expect(reg.state).toBe('registered');
    expect(await observer.instances('demo-web')).toHaveLength(1);
    expect(lost).toHaveLength(1); // lost once while frozen, re-registered once
  }, 40_000);

  it('a register() that etcd dies under fails retryably, and the id can be registered after', async () => {
    const { etcd, open } = await cluster();
    const owner = open();
    // The outcome is taken at once: the register() can fail before halt() has seen etcd exit,
    // and a rejection with no handler yet would be reported as unhandled.
    const registering = owner.register(r1).then(
      (reg) => ({ reg }),
      (err: unknown) => ({ err }),
    );
    await etcd.halt('SIGKILL');
    const outcome = await registering;
    if ('err' in outcome) {
      expect(outcome.err).toMatchObject({ retryable: true });
    }
    await etcd.resume();
    // Whatever landed before the kill ends with its TTL at the latest: the id is free again,
    // or still held by the registration that succeeded.
    const observer = open();
    await vi.waitFor(
      async () => {
        if ('reg' in outcome) {
          expect(outcome.reg.state).toBe('registered');
          expect(await observer.instances('demo-web')).toHaveLength(1);
        } else {
          await (await owner.register(r1)).close();
        }
      },
      3 * ttlMs + 5000,
    );
  }, 40_000);
});
