// The controller on a real etcd: build, release, rolling deploys and rollback through the
// real Scheduler and fake agents; config changes racing from two controllers; a controller
// whose etcd connection dies leaves a build that another controller fails once its lease ends.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '@flotilla/etcd';
import { etcdEndpoints, releaseEtcd, uniquePrefix } from '../../../test/support/etcd.js';
import { Controller } from './controller.js';
import { ProcfileBuilder } from './procfile-builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let endpoints: string[];
beforeAll(async () => {
  endpoints = await etcdEndpoints();
});
afterAll(releaseEtcd);

const cleanups: (() => Promise<unknown>)[] = [];
let h: Harness | undefined;
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
  await h?.close();
  h = undefined;
});

describe('Controller on etcd', () => {
  it('builds, deploys, rolls a config change and rolls back', async () => {
    const s = new EtcdStore({ endpoints, prefix: uniquePrefix('controller') });
    cleanups.push(() => s.close());
    h = await harness({ store: s });
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source({ Procfile: 'web: node server.js\n', 'server.js': '//\n' });
    const build = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    expect((await h.controller.waitForBuild('demo', build.id)).status).toBe('succeeded');
    await h.controller.patchFormation('demo', { web: { quantity: 3 } });
    await h.controller.patchConfig('demo', { A: '1' }, { batchSize: 2 });
    const up = (await h.controller.listDynos('demo')).filter((d) => d.state === 'up');
    expect(up.map((d) => d.release)).toEqual(['v2', 'v2', 'v2']);
    await h.controller.rollback('demo');
    const back = (await h.controller.listDynos('demo')).filter((d) => d.state === 'up');
    expect(back.map((d) => d.release)).toEqual(['v3', 'v3', 'v3']);
    expect((await h.controller.getRelease('demo', 'v3')).config).toEqual({});
  });

  it('two controllers racing config changes get one release each', async () => {
    const prefix = uniquePrefix('controller');
    const s = new EtcdStore({ endpoints, prefix });
    const s2 = new EtcdStore({ endpoints, prefix });
    cleanups.push(
      () => s.close(),
      () => s2.close(),
    );
    h = await harness({ store: s });
    const other = new Controller({
      store: s2,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'b'),
      builder: new ProcfileBuilder(),
      routes: h.routes,
    });
    cleanups.push(() => other.close());
    await other.start();
    await h.controller.createApp({ name: 'demo' });
    const all = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 === 0 ? h?.controller : other)?.patchConfig('demo', { [`K${i}`]: 'x' }),
      ),
    );
    expect(new Set(all.map((r) => r?.id)).size).toBe(8);
    expect(Object.keys(await h.controller.getConfig('demo')).length).toBe(8);
  });

  it("fails the build of a controller whose etcd connection died, once that controller's lease ended", async () => {
    const prefix = uniquePrefix('controller');
    const s = new EtcdStore({ endpoints, prefix });
    cleanups.push(() => s.close());
    h = await harness({ store: s });
    const deadStore = new EtcdStore({ endpoints, prefix });
    let building!: () => void;
    const started = new Promise<void>((resolve) => (building = resolve));
    const dead = new Controller({
      store: deadStore,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'dead'),
      leaseTtlMs: 2000,
      builder: {
        build: async () => {
          building();
          return new Promise(() => undefined);
        },
      },
    });
    cleanups.push(() => dead.close());
    await dead.start();
    await dead.createApp({ name: 'demo' });
    const src = await h.source({ Procfile: 'web: x\n' });
    const build = await dead.createBuild('demo', { type: 'git', dir: src, sha: sha(2) });
    await started;
    await deadStore.close(); // its lease is no longer renewed: it ends within its TTL
    // No bound is promised past the lease's end; this takes 6.5 s on a quiet machine, a third
    // of the default test timeout, so the wait and the test get room for a loaded CI machine.
    const failed = await h.controller.waitForBuild('demo', build.id, {
      signal: AbortSignal.timeout(45_000),
    });
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/stopped before it finished/);
  }, 60_000);
});
