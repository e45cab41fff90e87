// A new job must stay up `minHealthyMs` before a deploy counts it: one that binds its port
// and crashes a moment later fails the deploy, and the release before keeps serving.
import { afterEach, describe, expect, it } from 'vitest';
import type { AssignedJob } from '@flotilla/cluster';
import { isFlotillaError } from '@flotilla/core';
import type { ControllerEvent } from './events.js';
import type { FakeJobBehaviour } from './testing/fake-agents.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Up for FLAKY ms (a release's config), then exits with 3. */
const flaky = {
  behaviour: (job: AssignedJob): FakeJobBehaviour => {
    const ms = job.release?.config.FLAKY;
    return ms === undefined ? 'run' : { crash: 3, upForMs: Number(ms) };
  },
};

async function deployed(hh: Harness): Promise<void> {
  await hh.controller.createApp({ name: 'demo' });
  const src = await hh.source({ Procfile: 'web: node server.js\n', 'server.js': '//\n' });
  const build = await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
  expect((await hh.controller.waitForBuild('demo', build.id)).status).toBe('succeeded');
  expect((await hh.controller.getApp('demo')).liveRelease).toBe('v1');
}

describe('deploy minHealthyMs', () => {
  it('a new job that crashes soon after it came up fails the deploy; the old release serves on', async () => {
    h = await harness({
      controller: { deploy: { minHealthyMs: 1000, readyTimeoutMs: 10_000 } },
      agents: flaky,
    });
    await deployed(h);
    const err = await h.controller.patchConfig('demo', { FLAKY: '150' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    const deployment = (err as { deployment?: { status: string; failedJobs?: unknown[] } })
      .deployment;
    expect(deployment?.status).toBe('rolled-back');
    expect(deployment?.failedJobs?.[0]).toMatchObject({ exitStatus: 3, type: 'web' });
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v1');
    expect((await h.cluster.formations({ app: 'demo' })).map((f) => f.release)).toEqual(['v1']);
  });

  it('without it (the default), a job that crashes after it came up passes the deploy', async () => {
    h = await harness({ agents: flaky });
    await deployed(h);
    // Up for 1.5 s: counted at once, long before it crashes (150 ms raced the count under load).
    await h.controller.patchConfig('demo', { FLAKY: '1500' });
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v2');
  });

  it('a job that stays up counts after minHealthyMs, and the deploy says what it waits for', async () => {
    h = await harness({ controller: { deploy: { minHealthyMs: 400 } } });
    await deployed(h);
    const events: ControllerEvent[] = [];
    const ac = new AbortController();
    const collecting = (async () => {
      for await (const e of h.controller.events({ app: 'demo', signal: ac.signal })) events.push(e);
    })();
    await h.controller.patchConfig('demo', { MODE: 'b' });
    ac.abort();
    await collecting;
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v2');
    const progress = events.flatMap((e) => (e.type === 'deploy.progress' ? [e] : []));
    const waiting = progress.find((e) => e.message.includes('must stay up 400 ms'));
    const counted = progress.find((e) => e.message === 'web: 1 of 1 new job(s) ready');
    expect(waiting?.message).toBe('web: 1 new job(s) up; each must stay up 400 ms to count');
    // counted no sooner than the time it had to stay up after it was seen up
    expect(counted).toBeDefined();
    expect((counted?.time ?? 0) - (waiting?.time ?? 0)).toBeGreaterThanOrEqual(400);
  });

  it('a deploy cancelled while its jobs wait out minHealthyMs ends at once, rolled back', async () => {
    h = await harness();
    await deployed(h);
    const hh = h;
    const ac = new AbortController();
    const cancelling = (async () => {
      for await (const e of hh.controller.events({ app: 'demo', signal: ac.signal }))
        if (e.type === 'deploy.progress' && e.message.includes('must stay up')) ac.abort();
    })();
    // 50 s to stay up, within a 60 s step: only the abort ends this before the test's timeout.
    const err = await hh.controller
      .deploy('demo', 'v1', { minHealthyMs: 50_000, readyTimeoutMs: 60_000, signal: ac.signal })
      .catch((e: unknown) => e)
      .finally(() => ac.abort());
    await cancelling;
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED'), String(err)).toBe(true);
    expect((err as { deployment?: { reason?: string } }).deployment?.reason).toMatch(/cancelled/);
    expect((await hh.controller.getApp('demo')).liveRelease).toBe('v1');
    await expect
      .poll(async () =>
        (await hh.controller.listDynos('demo'))
          .filter((d) => d.state !== 'down' && d.state !== 'crashed')
          .map((d) => d.deployment),
      )
      .toEqual(['v1']);
  });

  it('refuses a minHealthyMs the ready timeout leaves no room for, or not a number of ms', async () => {
    h = await harness();
    await deployed(h);
    for (const options of [
      { minHealthyMs: 60_000, readyTimeoutMs: 60_000 },
      { minHealthyMs: -1 },
      { minHealthyMs: 1.5 },
    ]) {
      const err = await h.controller.deploy('demo', 'v1', options).catch((e: unknown) => e);
      expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_INVALID_INPUT'), String(err)).toBe(true);
      expect((err as Error).message).toContain('minHealthyMs');
    }
    // as a controller's default too: refused when it is made, not at every deploy
    await expect(
      harness({ controller: { deploy: { minHealthyMs: 5000, readyTimeoutMs: 5000 } } }),
    ).rejects.toThrow(/deploy\.minHealthyMs/);
  });
});
