// Two host agents and a scheduler on a real etcd. One agent runs in a process of its own and is
// SIGKILLed (its lease is never released: its heartbeat just stops). Its host goes down, its job
// starts on the other host and becomes ready in discovery. Restarted on the same machine, the
// agent finds the job its killed predecessor left running, no longer assigned to it, and stops
// it: nothing runs twice.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterState } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { EtcdStore } from '@flotilla/etcd';
import { ProcessDriver, type HostAgent } from '@flotilla/host';
import { Scheduler } from '@flotilla/scheduler';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from './support/etcd.js';
import { answers, deployHello, hostAgent, stopAll, untilReady } from './host-support.js';
import { claimPortRange } from './support/port-slots.js';

const CHILD = fileURLToPath(new URL('./host-agent-child.mjs', import.meta.url));

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(async () => {
  await releaseEtcd();
});

describe('host agents and a scheduler (etcd)', () => {
  it('an agent killed with SIGKILL: its host goes down, its job is ready on the other host, and a restarted agent stops the leftover', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-host-failover-etcd-'));
    const prefix = uniquePrefix('host-failover');
    const store = new EtcdStore({ endpoints, prefix });
    const cluster = new ClusterState({ store });
    const discovery = new Discovery({ store });
    const scheduler = new Scheduler({ store, hostGraceMs: 1000, restartBackoffMs: [0] });
    scheduler.on('error', () => undefined);
    const ports = await claimPortRange(40);
    const agents: HostAgent[] = [];
    const drivers: ProcessDriver[] = [];
    let child: ChildProcess | undefined;
    try {
      await scheduler.start();
      const proc = spawn(
        process.execPath,
        [
          CHILD,
          endpoints.join(','),
          prefix,
          'h1',
          dir,
          String(ports.from),
          String(ports.from + 19),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      child = proc;
      const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
      expect(JSON.parse((await lines.next()).value as string)).toEqual({ started: true });
      const h2 = await hostAgent(dir, 'h2', {
        store,
        ports: { from: ports.from + 20, to: ports.to },
      });
      agents.push(h2.agent);
      drivers.push(h2.driver);
      await h2.agent.start();
      await deployHello(store, dir, 2);
      const onHosts = (r: { meta: Record<string, string> }[]): string =>
        r
          .map((i) => i.meta.host)
          .sort()
          .join();
      const before = await untilReady(discovery, 'demo-web', (r) => onHosts(r) === 'h1,h2');
      const orphan = before.find((i) => i.meta.host === 'h1');

      const killed = once(proc, 'exit');
      proc.kill('SIGKILL');
      await killed;

      const after = await untilReady(
        discovery,
        'demo-web',
        (r) => r.length === 2 && onHosts(r) === 'h2,h2',
      );
      expect(after.map((i) => i.id)).not.toContain(orphan?.id);
      expect(new Set(await answers(after)).size).toBe(2);
      expect((await cluster.hosts()).find((h) => h.record.id === 'h1')?.state).toBe('down');
      // The killed agent's job still runs on its machine, no longer assigned to it.
      expect(await answers(orphan === undefined ? [] : [orphan])).toHaveLength(1);

      // The agent comes back on the same machine: it stops that job and runs nothing twice.
      const h1 = await hostAgent(dir, 'h1', {
        store,
        ports: { from: ports.from, to: ports.from + 19 },
      });
      agents.push(h1.agent);
      drivers.push(h1.driver);
      await h1.agent.start();
      expect(await h1.driver.list()).toEqual([]);
      await expect(fetch(`http://${orphan?.addr}/`)).rejects.toThrow();
      await scheduler.idle();
      expect((await cluster.jobs({ app: 'demo' })).map((j) => j.record.hostId)).toEqual([
        'h2',
        'h2',
      ]);
      expect(onHosts(await discovery.instances('demo-web', { readyOnly: true }))).toBe('h2,h2');
    } finally {
      child?.kill('SIGKILL');
      await scheduler.close();
      for (const a of agents) await a.close().catch(() => undefined);
      for (const d of drivers) await stopAll(d);
      // Whatever the killed agent left running: adopted by a driver on its state dir, stopped.
      await stopAll(
        await ProcessDriver.create({ stateDir: join(dir, 'state-h1') }).catch(() => undefined),
      );
      await discovery.close();
      await cluster.close();
      await store.deletePrefix('').catch(() => undefined);
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
