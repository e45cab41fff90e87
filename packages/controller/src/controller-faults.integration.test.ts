// The controller when its etcd dies or freezes in the middle of a deploy: the deploy settles
// (live or rolled back, never half-way), and the app ends with the live release's jobs only.
import { afterEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { EtcdStore } from '@flotilla/etcd';
import { startEtcd, type TestEtcd } from '../../../test/support/etcd.js';
import { harness, sha, type Harness } from './test-support/harness.js';

const cleanups: (() => Promise<unknown>)[] = [];
let h: Harness | undefined;
afterEach(async () => {
  await h?.close().catch(() => undefined);
  h = undefined;
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

async function setUp(): Promise<{ etcd: TestEtcd; hh: Harness }> {
  const etcd = await startEtcd();
  cleanups.push(() => etcd.stop());
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '/controller-faults/' });
  cleanups.push(() => store.close());
  const hh = await harness({
    store,
    controller: { leaseTtlMs: 10_000, deploy: { readyTimeoutMs: 20_000, stopTimeoutMs: 20_000 } },
  });
  h = hh;
  await hh.controller.createApp({ name: 'demo' });
  const src = await hh.source({ Procfile: 'web: node server.js\n', 'server.js': '//\n' });
  const build = await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
  expect((await hh.controller.waitForBuild('demo', build.id)).status).toBe('succeeded');
  await hh.controller.patchFormation('demo', { web: { quantity: 2 } });
  await expect
    .poll(() =>
      hh.controller.listDynos('demo').then((d) => d.filter((x) => x.state === 'up').length),
    )
    .toBe(2);
  return { etcd, hh };
}

/** After the dust settles: one formation, the live release's, and its jobs only. */
async function consistent(hh: Harness): Promise<void> {
  const state = async (): Promise<string> => {
    try {
      const live = (await hh.controller.getApp('demo')).liveRelease;
      const formations = (await hh.cluster.formations({ app: 'demo' })).map((f) => f.release);
      const jobs = (await hh.controller.listDynos('demo'))
        .filter((d) => d.state !== 'down' && d.state !== 'crashed')
        .map((d) => `${d.deployment}:${d.state}`);
      const [last] = await hh.controller.listDeployments('demo');
      const ok =
        formations.length === 1 &&
        formations[0] === live &&
        jobs.length === 2 &&
        jobs.every((j) => j === `${live}:up`) &&
        last?.status !== 'running';
      return ok ? 'consistent' : JSON.stringify({ live, formations, jobs, last: last?.status });
    } catch (err) {
      return (err as Error).message;
    }
  };
  await expect.poll(state, { timeout: 30_000, interval: 200 }).toBe('consistent');
}

describe('Controller when etcd fails under a deploy', () => {
  it('etcd killed (SIGKILL) as a deploy starts and back 2 s later: the deploy settles, consistent', async () => {
    const { etcd, hh } = await setUp();
    let back: Promise<void> = Promise.resolve();
    // Waited for before the cleanup stops etcd: a relaunch after stop() would be left running.
    cleanups.push(() => back);
    hh.controller.once('deploy.started', () => {
      back = etcd
        .halt('SIGKILL')
        .then(() => new Promise((resolve) => setTimeout(resolve, 2000)))
        .then(() => etcd.resume());
    });
    const res = await hh.controller.patchConfig('demo', { A: '1' }).catch((e: unknown) => e);
    if (res instanceof Error) expect(isFlotillaError(res)).toBe(true);
    await consistent(hh);
  }, 90_000);

  it('etcd frozen (SIGSTOP) for 3 s under a deploy: it goes on and settles, consistent', async () => {
    const { etcd, hh } = await setUp();
    let back: Promise<void> = Promise.resolve();
    cleanups.push(() => back);
    hh.controller.once('deploy.started', () => {
      back = etcd
        .halt('SIGSTOP')
        .then(() => new Promise((resolve) => setTimeout(resolve, 3000)))
        .then(() => etcd.resume());
    });
    const res = await hh.controller.patchConfig('demo', { A: '1' }).catch((e: unknown) => e);
    if (res instanceof Error) expect(isFlotillaError(res)).toBe(true);
    await consistent(hh);
  }, 90_000);
});
