// waitForDeploy: one call that answers "did this push go live, and if not, why".
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from './controller.js';
import { harness, sha, type Harness } from './test-support/harness.js';

const WEB_APP = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };

let h: Harness | undefined;
let other: Controller | undefined;
afterEach(async () => {
  await other?.close();
  other = undefined;
  await h?.close();
  h = undefined;
});

describe('waitForDeploy', () => {
  it('says live for a push that went live, with its release and deployment', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source(WEB_APP);
    const build = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    const outcome = await h.controller.waitForDeploy('demo', build.id);
    expect(outcome).toMatchObject({
      status: 'live',
      release: 'v1',
      reason: undefined,
      liveRelease: 'v1',
      deployment: { release: 'v1', status: 'succeeded' },
    });
    expect(outcome.build.status).toBe('succeeded');
    expect(outcome.build.deployment).toBe(outcome.deployment?.id);
  });

  it('says deploy-failed, with why and what still serves, when the build succeeded and its deploy was rolled back', async () => {
    h = await harness({
      agents: {
        behaviour: (job) =>
          job.release?.config.BROKEN === '1' ? { crash: 3, message: 'exited with code 3' } : 'run',
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const first = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    expect((await h.controller.waitForDeploy('demo', first.id)).status).toBe('live');
    await h.controller.patchConfig('demo', { BROKEN: '1' }, { deploy: false });
    const second = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(2),
    });
    const outcome = await h.controller.waitForDeploy('demo', second.id);
    // The build alone succeeded: that is what waitForBuild says, and why it is not enough.
    expect((await h.controller.waitForBuild('demo', second.id)).status).toBe('succeeded');
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.release).toBe('v3');
    expect(outcome.liveRelease).toBe('v1');
    expect(outcome.deployment?.status).toBe('rolled-back');
    expect(outcome.deployment?.failedJobs?.[0]?.exitStatus).toBe(3);
    expect(outcome.reason).toBe(outcome.deployment?.reason);
    expect(outcome.reason).toMatch(/crash|exited with code 3/);
    expect(outcome.build.deployError).toMatch(/exited with code 3|crash/);
  });

  it('says build-failed with the build error, and not-deployed for deploy: false', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const broken = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source({ 'server.js': '// no Procfile\n' }),
      sha: sha(1),
    });
    const failed = await h.controller.waitForDeploy('demo', broken.id);
    expect(failed).toMatchObject({
      status: 'build-failed',
      release: undefined,
      deployment: undefined,
    });
    expect(failed.reason).toContain('Procfile');
    const quiet = await h.controller.createBuild(
      'demo',
      { type: 'git', dir: await h.source(WEB_APP), sha: sha(2) },
      { deploy: false },
    );
    const built = await h.controller.waitForDeploy('demo', quiet.id);
    expect(built).toMatchObject({
      status: 'not-deployed',
      release: undefined,
      liveRelease: undefined,
    });
    expect(built.reason).toContain('deploy: false');
  });

  it('refuses an unknown build with FLOTILLA_CONTROLLER_BUILD_NOT_FOUND, also an id with /', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    for (const id of ['b-000000000000', '../b-1', 'b-1/x', 'b\0'])
      await expect(h.controller.waitForDeploy('demo', id)).rejects.toMatchObject({
        code: 'FLOTILLA_CONTROLLER_BUILD_NOT_FOUND',
      });
  });

  it('a controller closed mid-deploy: another one says deploy-failed, naming the deployment', async () => {
    h = await harness({ agents: { behaviour: () => 'hang' } });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    for await (const l of h.controller.buildOutput('demo', build.id))
      if (l.line.startsWith('-----> Released')) break;
    // The deployment is named on the build once it started, before the deploy ends.
    await expect
      .poll(async () => (await h?.controller.getBuild('demo', build.id))?.deployment)
      .toMatch(/^d-/);
    await h.controller.close();
    other = new Controller({
      store: h.store,
      artifacts: h.artifacts,
      workDir: `${h.dir}/work-2`,
      routes: h.routes,
      leaseTtlMs: 2000,
    });
    await other.start();
    const outcome = await other.waitForDeploy('demo', build.id);
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.deployment?.id).toBe(outcome.build.deployment);
    expect(outcome.deployment?.status).not.toBe('succeeded');
    expect(outcome.reason).toBeTruthy();
    expect(outcome.liveRelease).toBeUndefined();
  });
});
