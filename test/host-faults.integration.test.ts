// The HostAgent on a real etcd that is frozen (SIGSTOP) or killed (SIGKILL, then restarted)
// just as a job starts: the job's registration in discovery fails, is retried, and the job is
// published and reported up once etcd is back.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClusterState, type JobRecord } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { EtcdStore } from '@flotilla/etcd';
import type { ProcessDriver } from '@flotilla/host';
import { startEtcd } from './support/etcd.js';
import { helloSlug, hostAgent, stopAll, within } from './host-support.js';
import { claimPortRange } from './support/port-slots.js';

describe('HostAgent on an etcd that fails as a job starts', () => {
  for (const fault of ['frozen', 'killed'] as const) {
    it(`publishes the job once etcd is back (${fault})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), `flotilla-host-faults-${fault}-`));
      const etcd = await startEtcd();
      const store = new EtcdStore({ endpoints: [etcd.endpoint], requestTimeoutMs: 1000 });
      const cluster = new ClusterState({ store });
      const discovery = new Discovery({ store });
      let driver: ProcessDriver | undefined;
      try {
        const h = await hostAgent(dir, 'h1', {
          store,
          discovery,
          ports: await claimPortRange(10),
          heartbeatTtlMs: 10_000,
        });
        driver = h.driver;
        const agent = h.agent;
        // The fault comes the moment the job runs, before its health check can pass.
        agent.on('started', () => {
          void (fault === 'frozen' ? etcd.halt('SIGSTOP') : etcd.halt('SIGKILL'));
        });
        // Seen from discovery: the job's registration was tried, and failed.
        let refusedOnce!: () => void;
        const refused = new Promise<void>((resolve) => (refusedOnce = resolve));
        const register = discovery.register.bind(discovery);
        discovery.register = async (options) => {
          try {
            return await register(options);
          } catch (err) {
            refusedOnce();
            throw err;
          }
        };
        await agent.start();
        await cluster.putRelease({
          app: 'demo',
          release: 'v1',
          artifact: await helloSlug(dir),
          config: {},
          processes: { web: { command: 'exec node server.js', stopGraceMs: 2000 } },
          createdAt: Date.now(),
        });
        const record: JobRecord = {
          id: 'web.f',
          app: 'demo',
          release: 'v1',
          type: 'web',
          hostId: 'h1',
          index: 1,
          resources: { cpu: 100, memory: 128 },
          desired: 'run',
          createdAt: Date.now(),
        };
        const ready = new Promise<void>((resolve) =>
          agent.on('ready', (id) => id === 'web.f' && resolve()),
        );
        await store.put(cluster.keys.job('h1', 'web.f'), JSON.stringify(record));
        await within(refused, 20_000, 'a registration refused while etcd is down');
        await etcd.resume();
        await within(ready, 20_000, 'the job ready'); // comes only once it is published
        const [instance] = await discovery.instances('demo-web', { readyOnly: true });
        expect(instance).toMatchObject({ id: 'web.f', meta: { host: 'h1' } });
        expect(await (await fetch(`http://${instance?.addr}/`)).text()).toBe('hello from web.1');
        // Its status gets there too (written in the background, retried): every write of it
        // since this etcd began, until 'up'.
        for await (const ev of store.watch(cluster.keys.jobStatus('h1', 'web.f'), {
          fromRevision: 1,
          signal: AbortSignal.timeout(15_000),
        })) {
          if (ev.type === 'put' && ev.kv.value.includes('"up"')) break;
        }
        expect((await cluster.jobs({ app: 'demo' }))[0]?.status?.state).toBe('up');
        await agent.close({ stopJobs: true });
      } finally {
        await etcd.resume().catch(() => undefined);
        await stopAll(driver);
        await discovery.close();
        await cluster.close();
        await store.close();
        await etcd.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }, 60_000);
  }
});
