import { afterEach, describe, expect, it } from 'vitest';
import { isFlotillaError, systemClock } from '@flotilla/core';
import type { ControllerEvent } from './events.js';
import { ProcfileBuilder } from './procfile-builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

const WEB_APP = {
  Procfile: 'web: node server.js\nworker: node worker.js\n',
  'server.js': '// server\n',
  'worker.js': '// worker\n',
};

let h: Harness | undefined;
/** The current test's harness (for closures). */
function cur(): Harness {
  if (h === undefined) throw new Error('no harness');
  return h;
}
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function deployed(hh: Harness, app = 'demo'): Promise<string> {
  await hh.controller.createApp({ name: app });
  const src = await hh.source(WEB_APP);
  const build = await hh.controller.createBuild(app, { type: 'git', dir: src, sha: sha(1) });
  const done = await hh.controller.waitForBuild(app, build.id);
  expect(done.status).toBe('succeeded');
  return build.id;
}

/** The web jobs that run or are on their way (not ended). */
function webJobs(hh: Harness, app = 'demo'): Promise<{ release: string; state: string }[]> {
  return hh.controller
    .listDynos(app)
    .then((d) => d.filter((x) => x.type === 'web' && x.state !== 'down' && x.state !== 'crashed'));
}

describe('Controller on a MemoryStore with a real scheduler and fake agents', () => {
  it('builds, releases and deploys: web scaled to 1, its output kept, events told', async () => {
    h = await harness();
    const events: ControllerEvent[] = [];
    const ac = new AbortController();
    const collecting = (async () => {
      for await (const e of cur().controller.events({ app: 'demo', signal: ac.signal }))
        events.push(e);
    })();
    const buildId = await deployed(h);
    const app = await h.controller.getApp('demo');
    expect(app).toMatchObject({ name: 'demo', latestRelease: 1, liveRelease: 'v1' });
    const build = await h.controller.getBuild('demo', buildId);
    expect(build).toMatchObject({
      status: 'succeeded',
      release: 'v1',
      processTypes: { web: 'node server.js', worker: 'node worker.js' },
    });
    expect(build.artifact?.type).toBe('slug');
    const lines: string[] = [];
    for await (const l of h.controller.buildOutput('demo', buildId)) lines.push(l.line);
    expect(lines.some((l) => l.includes('Procfile declares types -> web, worker'))).toBe(true);
    expect(lines.some((l) => l.includes('Released v1'))).toBe(true);
    expect(lines.some((l) => l.includes('Deployed v1'))).toBe(true);
    const dynos = await h.controller.listDynos('demo');
    expect(dynos.map((d) => [d.name, d.release, d.state])).toEqual([['web.1', 'v1', 'up']]);
    const formation = await h.controller.getFormation('demo');
    expect(formation.map((f) => [f.type, f.quantity])).toEqual([
      ['web', 1],
      ['worker', 0],
    ]);
    const releases = await h.controller.listReleases('demo');
    expect(releases.map((r) => r.id)).toEqual(['v1']);
    expect((await h.controller.hosts()).map((x) => [x.record.id, x.state])).toEqual([
      ['host-1', 'up'],
    ]);
    const deployments = await h.controller.listDeployments('demo');
    expect(deployments.map((d) => [d.release, d.status])).toEqual([['v1', 'succeeded']]);
    ac.abort();
    await collecting;
    const types = new Set(events.map((e) => e.type));
    for (const t of [
      'app.created',
      'build.started',
      'build.output',
      'build.finished',
      'release.created',
      'deploy.started',
      'deploy.progress',
      'deploy.finished',
      'job.state',
    ])
      expect(types, t).toContain(t);
  });

  it('a config change makes a new release and a rolling restart onto it', async () => {
    h = await harness();
    await deployed(h);
    await h.controller.patchFormation('demo', { web: { quantity: 2 } });
    await expect
      .poll(() => webJobs(cur()).then((j) => j.filter((x) => x.state === 'up').length))
      .toBe(2);
    const release = await h.controller.patchConfig('demo', { GREETING: 'hello', SECRET: 's3cret' });
    expect(release).toMatchObject({
      id: 'v2',
      config: { GREETING: 'hello', SECRET: 's3cret' },
      description: 'Set GREETING, SECRET',
    });
    // Resolved once live: both web jobs of v2 are up, none of v1 is left.
    const jobs = await webJobs(h);
    expect(jobs.map((j) => [j.release, j.state])).toEqual([
      ['v2', 'up'],
      ['v2', 'up'],
    ]);
    expect(await h.controller.getConfig('demo')).toEqual({ GREETING: 'hello', SECRET: 's3cret' });
    const v3 = await h.controller.patchConfig('demo', { SECRET: null });
    expect(v3).toMatchObject({
      id: 'v3',
      config: { GREETING: 'hello' },
      description: 'Unset SECRET',
    });
    expect(await h.controller.patchConfig('demo', { SECRET: null })).toBeUndefined();
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v3');
  });

  it('two concurrent config changes get two releases, each with the other one seen', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const [a, b] = await Promise.all([
      h.controller.patchConfig('demo', { A: '1' }),
      h.controller.patchConfig('demo', { B: '2' }),
    ]);
    expect(new Set([a?.id, b?.id])).toEqual(new Set(['v1', 'v2']));
    expect(await h.controller.getConfig('demo')).toEqual({ A: '1', B: '2' });
  });

  it('rolls back to an earlier release: a new release with its build and config', async () => {
    h = await harness();
    const first = await deployed(h);
    await h.controller.patchConfig('demo', { MODE: 'new' });
    const back = await h.controller.rollback('demo');
    expect(back).toMatchObject({
      id: 'v3',
      build: first,
      config: {},
      description: 'Rollback to v1',
    });
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v3');
    expect((await webJobs(h)).map((j) => j.release)).toEqual(['v3']);
    const again = await h.controller.rollback('demo', 'v2');
    expect(again.config).toEqual({ MODE: 'new' });
  });

  it('a deploy whose new jobs crash is rolled back by itself, the old release still serving', async () => {
    h = await harness({
      agents: {
        behaviour: (job) =>
          job.release?.config.BROKEN === '1' ? { crash: 3, message: 'exited with code 3' } : 'run',
      },
    });
    await deployed(h);
    const before = (await webJobs(h)).map((j) => j.release);
    const err = await h.controller.patchConfig('demo', { BROKEN: '1' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    const deployment = (
      err as { deployment?: { status: string; failedJobs?: { exitStatus?: number }[] } }
    ).deployment;
    expect(deployment?.status).toBe('rolled-back');
    expect(deployment?.failedJobs?.[0]?.exitStatus).toBe(3);
    expect((err as Error).message).toContain('v1 still serves');
    // Named as ps names it (web.1), not by its job id alone.
    expect((err as Error).message).toMatch(/new web\.1 crashed: exited with code 3/);
    expect(before).toEqual(['v1']);
    await expect
      .poll(() => webJobs(cur()).then((j) => j.map((x) => `${x.release}:${x.state}`)))
      .toEqual(['v1:up']);
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v1');
    const formations = await h.cluster.formations({ app: 'demo' });
    expect(formations.map((f) => f.release)).toEqual(['v1']);
    // Tried again: a fresh cluster release id, so the first attempt's crashed job (held in
    // the scheduler's backoff) does not count; it fails and rolls back the same way.
    const again = await h.controller.deploy('demo', 'v2').catch((e: unknown) => e);
    expect(isFlotillaError(again, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    const crashed = (await h.controller.listDynos('demo')).filter((d) => d.state === 'crashed');
    expect(crashed.map((d) => d.deployment).sort()).toEqual(['v2', 'v2-r1']);
    expect((await h.cluster.formations({ app: 'demo' })).map((f) => f.release)).toEqual(['v1']);
  });

  it('a deploy not ready in time is rolled back, naming the jobs that were not ready', async () => {
    h = await harness({
      // Long enough for the job to be placed first on a loaded machine: a timeout before the
      // scheduler placed it says "only 0 of 1 web job(s) were placed", not "did not become ready".
      controller: { deploy: { readyTimeoutMs: 3000, stopTimeoutMs: 5000 } },
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
    });
    await deployed(h);
    const err = await h.controller.patchConfig('demo', { SLOW: '1' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/1 web job\(s\) did not become ready within 3000 ms/);
    await expect
      .poll(() => webJobs(cur()).then((j) => j.map((x) => `${x.release}:${x.state}`)))
      .toEqual(['v1:up']);
  });

  it('one deploy per app: a second one is refused when asked to, or waits its turn', async () => {
    h = await harness({
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
      // The refused and the queued call must land while the slow deploy runs: its ready timeout
      // is that window (1.5 s was tight on a loaded CI machine), and the test's own length.
      controller: { deploy: { readyTimeoutMs: 5000, stopTimeoutMs: 5000 } },
    });
    await deployed(h);
    const slow = h.controller.patchConfig('demo', { SLOW: '1' }).catch((e: unknown) => e);
    await expect
      .poll(() =>
        cur()
          .controller.listDeployments('demo')
          .then((d) => d[0]?.status),
      )
      .toBe('running');
    const refused = await h.controller
      .restart('demo', { onBusy: 'refuse' })
      .catch((e: unknown) => e);
    expect(isFlotillaError(refused, 'FLOTILLA_CONTROLLER_DEPLOY_IN_PROGRESS')).toBe(true);
    const waited = h.controller.restart('demo');
    expect(isFlotillaError(await slow, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    const restart = await waited;
    expect(restart).toMatchObject({ kind: 'restart', status: 'succeeded', release: 'v1' });
    const jobs = await h.controller.listDynos('demo');
    expect(jobs.filter((j) => j.state === 'up').map((j) => j.deployment)).toEqual(['v1-r1']);
  });

  it('scales: quantities apply at once, a size change is a rolling restart', async () => {
    h = await harness();
    await deployed(h);
    const formation = await h.controller.patchFormation('demo', {
      web: { quantity: 3 },
      worker: { quantity: 1 },
    });
    expect(formation.map((f) => [f.type, f.quantity, f.size])).toEqual([
      ['web', 3, 'standard'],
      ['worker', 1, 'standard'],
    ]);
    await expect
      .poll(() =>
        cur()
          .controller.listDynos('demo')
          .then((d) => d.filter((x) => x.state === 'up').length),
      )
      .toBe(4);
    await h.controller.patchFormation('demo', { worker: { size: 'large' } });
    const up = (await h.controller.listDynos('demo')).filter((d) => d.state === 'up');
    expect(up.map((d) => d.deployment)).toEqual(['v1-r1', 'v1-r1', 'v1-r1', 'v1-r1']);
    const jobs = await h.cluster.jobs({ app: 'demo' });
    expect(
      jobs
        .filter((j) => j.state === 'up' && j.record.type === 'worker')
        .map((j) => j.record.resources),
    ).toEqual([{ cpu: 1000, memory: 1024 }]);
  });

  it("builds of one app run one at a time (they share the app's cache), each released in turn", async () => {
    let running = 0;
    let overlapped = false;
    const inner = new ProcfileBuilder();
    h = await harness({
      controller: {
        builder: {
          build: async (input) => {
            running++;
            if (running > 1) overlapped = true;
            try {
              await new Promise((resolve) => setTimeout(resolve, 50));
              return await inner.build(input);
            } finally {
              running--;
            }
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source(WEB_APP);
    const a = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    const b = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(2) });
    const [da, db] = await Promise.all([
      h.controller.waitForBuild('demo', a.id),
      h.controller.waitForBuild('demo', b.id),
    ]);
    expect([da.status, da.release, db.status, db.release]).toEqual([
      'succeeded',
      'v1',
      'succeeded',
      'v2',
    ]);
    expect(overlapped).toBe(false);
    const lines: string[] = [];
    for await (const l of h.controller.buildOutput('demo', b.id)) lines.push(l.line);
    expect(lines[0]).toBe('-----> Waiting for the build of demo before this one');
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v2');
  });

  it('hooks veto steps with a reason', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source(WEB_APP);
    const off = h.controller.hooks.add('pre-build', ({ app }) =>
      app === 'demo' ? { veto: 'builds are frozen' } : undefined,
    );
    const err = await h.controller
      .createBuild('demo', { type: 'git', dir: src, sha: sha(1) })
      .catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_VETOED')).toBe(true);
    expect((err as Error).message).toContain('builds are frozen');
    expect((await h.controller.listBuilds('demo')).map((b) => b.status)).toEqual(['failed']);
    off();
    h.controller.hooks.add('post-build', ({ build }) => {
      if (build.processTypes?.worker !== undefined) throw new Error('no workers allowed');
    });
    const b2 = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(2) });
    const done = await h.controller.waitForBuild('demo', b2.id);
    expect(done).toMatchObject({ status: 'failed' });
    expect(done.error).toContain('no workers allowed');
    expect((await h.controller.getApp('demo')).latestRelease).toBe(0);
  });

  it('a pre-release veto stops the deploy before any job changes', async () => {
    h = await harness();
    await deployed(h);
    h.controller.hooks.add('pre-release', ({ release }) =>
      release.config.NOPE === '1' ? { veto: 'not today' } : undefined,
    );
    const err = await h.controller.patchConfig('demo', { NOPE: '1' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_VETOED')).toBe(true);
    expect((await webJobs(h)).map((j) => j.release)).toEqual(['v1']);
    expect((await h.controller.listDeployments('demo'))[0]).toMatchObject({
      release: 'v2',
      status: 'failed',
    });
  });

  it('a hook that never answers vetoes its step after hookTimeoutMs, its signal aborted; no job changed', async () => {
    h = await harness({ controller: { hookTimeoutMs: 300 } });
    await deployed(h);
    let aborted: unknown;
    h.controller.hooks.add('pre-release', (_context, signal) => {
      signal.addEventListener('abort', () => (aborted = signal.reason), { once: true });
      return new Promise(() => undefined); // hangs, and ignores its signal
    });
    const err = await h.controller.patchConfig('demo', { A: '1' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_VETOED')).toBe(true);
    expect((err as Error).message).toBe(
      'pre-release hook vetoed: hook 1 of 1 did not answer within 300 ms (hookTimeoutMs)',
    );
    expect(aborted).toBeInstanceOf(Error);
    expect((await webJobs(h)).map((j) => j.release)).toEqual(['v1']);
  });

  it('a build aborted while its hook hangs ends at once with the abort reason, not at hookTimeoutMs', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source(WEB_APP);
    let entered!: () => void;
    const inHook = new Promise<void>((resolve) => (entered = resolve));
    h.controller.hooks.add('pre-build', () => {
      entered();
      return new Promise(() => undefined); // hangs, and ignores its signal
    });
    const ac = new AbortController();
    const building = h.controller
      .createBuild('demo', { type: 'git', dir: src, sha: sha(3) }, { signal: ac.signal })
      .catch((e: unknown) => e);
    await inHook;
    const reason = new Error('push abandoned');
    ac.abort(reason);
    expect(await building).toBe(reason);
  });

  it('refuses a hookTimeoutMs that is no whole number of ms from 1', async () => {
    for (const hookTimeoutMs of [0, -1, Number.NaN, 1.5, Infinity]) {
      const err = await harness({ controller: { hookTimeoutMs } }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'FLOTILLA_CONTROLLER_INVALID_INPUT',
        path: 'hookTimeoutMs',
      });
    }
  });

  it('a post-deploy veto deploys the release before again', async () => {
    h = await harness();
    await deployed(h);
    h.controller.hooks.add('post-deploy', ({ release }) =>
      release.config.SMOKE === 'fail' ? { veto: 'smoke test failed' } : undefined,
    );
    const err = await h.controller.patchConfig('demo', { SMOKE: 'fail' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_VETOED')).toBe(true);
    expect((await h.controller.getApp('demo')).liveRelease).toBe('v1');
    expect((await webJobs(h)).map((j) => j.release)).toEqual(['v1']);
    const [again, vetoed] = await h.controller.listDeployments('demo');
    expect([again?.release, again?.status]).toEqual(['v1', 'succeeded']);
    expect([vetoed?.release, vetoed?.status, vetoed?.reason]).toEqual([
      'v2',
      'rolled-back',
      'post-deploy hook vetoed: smoke test failed',
    ]);
  });

  it('collects artifacts no release keeps, keeping the last ones and the live one', async () => {
    // A clock an hour ahead: every artifact is old enough to be collected.
    const clock = {
      now: () => Date.now() + 3_600_000,
      setTimeout: systemClock.setTimeout,
      clearTimeout: systemClock.clearTimeout,
    };
    h = await harness({ controller: { keepReleases: 1, clock } });
    await h.controller.createApp({ name: 'demo' });
    const digests: string[] = [];
    for (let i = 0; i < 3; i++) {
      const src = await h.source({ ...WEB_APP, 'version.txt': String(i) });
      const build = await h.controller.createBuild('demo', {
        type: 'git',
        dir: src,
        sha: sha(i + 1),
      });
      const done = await h.controller.waitForBuild('demo', build.id);
      if (done.artifact?.type === 'slug') digests.push(done.artifact.sha256);
    }
    expect(new Set(digests).size).toBe(3);
    // Deploys collect in the background; collect once more to be sure all ran.
    await h.controller.collectArtifacts();
    expect((await h.artifacts.list()).map((a) => a.digest)).toEqual([digests[2]]);
    // v1's slug is gone: rolling back to it is refused before any release is made.
    const err = await h.controller.rollback('demo', 'v1').catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_ARTIFACT_INVALID')).toBe(true);
    expect((await h.controller.getApp('demo')).latestRelease).toBe(3);
  });

  it('keeps the output of the newest 20 builds, older ones pruned to one ended line', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source(WEB_APP);
    const ids: string[] = [];
    for (let i = 0; i < 22; i++) {
      const b = await h.controller.createBuild(
        'demo',
        { type: 'git', dir: src, sha: sha(i + 1) },
        { deploy: false },
      );
      await h.controller.waitForBuild('demo', b.id);
      ids.push(b.id);
    }
    await h.controller.collectArtifacts();
    const read = async (id: string): Promise<string[]> => {
      const out: string[] = [];
      for await (const l of cur().controller.buildOutput('demo', id)) out.push(l.line);
      return out;
    };
    expect(await read(ids[0] as string)).toEqual([
      '(output pruned: only the newest builds keep theirs)',
    ]);
    expect(await read(ids[1] as string)).toEqual([
      '(output pruned: only the newest builds keep theirs)',
    ]);
    expect((await read(ids[2] as string)).length).toBeGreaterThan(2);
    await h.controller.collectArtifacts(); // again: nothing changes
    expect(await read(ids[0] as string)).toEqual([
      '(output pruned: only the newest builds keep theirs)',
    ]);
  });

  it('domains: the default one, custom ones as routes, each hostname held by one app', async () => {
    h = await harness({ controller: { baseDomain: 'apps.test' } });
    await h.controller.createApp({ name: 'demo' });
    await h.controller.createApp({ name: 'other' });
    await h.controller.addDomain('demo', 'WWW.Example.com');
    const domains = await h.controller.listDomains('demo');
    expect(domains.map((d) => [d.hostname, d.kind])).toEqual([
      ['demo.apps.test', 'default'],
      ['www.example.com', 'custom'],
    ]);
    expect((await h.routes.list({ service: 'demo-web' })).map((r) => r.domain).sort()).toEqual([
      'demo.apps.test',
      'www.example.com',
    ]);
    const taken = await h.controller.addDomain('other', 'www.example.com').catch((e: unknown) => e);
    expect(isFlotillaError(taken, 'FLOTILLA_CONTROLLER_DOMAIN_EXISTS')).toBe(true);
    await h.controller.removeDomain('demo', 'www.example.com');
    expect((await h.routes.list({ service: 'demo-web' })).map((r) => r.domain)).toEqual([
      'demo.apps.test',
    ]);
    const missing = await h.controller
      .removeDomain('other', 'demo.apps.test')
      .catch((e: unknown) => e);
    expect(isFlotillaError(missing, 'FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND')).toBe(true);
  });

  it('destroying an app removes everything it owns and stops its jobs', async () => {
    h = await harness({ controller: { baseDomain: 'apps.test' } });
    const buildId = await deployed(h);
    await deployed(h, 'keep');
    const digest = (await h.controller.getBuild('demo', buildId)).artifact;
    await h.controller.addDomain('demo', 'demo.example.com');
    await h.controller.destroyApp('demo');
    expect(h.agents.running().length).toBe(1); // keep's web
    expect(await h.cluster.formations({ app: 'demo' })).toEqual([]);
    expect(await h.cluster.releases('demo')).toEqual([]);
    const left = (await h.store.list('controller/')).kvs
      .map((kv) => kv.key)
      .filter((k) => k.includes('/demo'));
    expect(left).toEqual([]);
    expect((await h.routes.list({ service: 'demo-web' })).length).toBe(0);
    // The slug is identical to keep's (same source): it stays for keep.
    expect(digest?.type === 'slug' && (await h.artifacts.stat(digest.sha256)) !== undefined).toBe(
      true,
    );
    const gone = await h.controller.getApp('demo').catch((e: unknown) => e);
    expect(isFlotillaError(gone, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')).toBe(true);
    await h.controller.createApp({ name: 'demo' }); // the name is free again
  });
});

describe('Controller input checks', () => {
  it('refuses bad names, keys, sizes and sources with a coded error and writes nothing', async () => {
    h = await harness();
    const code = async (p: Promise<unknown>): Promise<string | undefined> =>
      p.then(
        () => undefined,
        (e: unknown) => (isFlotillaError(e) ? e.code : String(e)),
      );
    expect(await code(h.controller.createApp({ name: 'Bad_Name' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.createApp({ name: 'a/b' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.createApp({ name: 'x'.repeat(64) }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.createApp({ name: 'nul\0' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.createApp({ meta: { __proto__: 'x' } as never }))).toBe(
      undefined,
    );
    await h.controller.createApp({ name: 'demo' });
    expect(await code(h.controller.createApp({ name: 'demo' }))).toBe(
      'FLOTILLA_CONTROLLER_APP_EXISTS',
    );
    expect(await code(h.controller.patchConfig('demo', { '1BAD': 'x' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchConfig('demo', { ['__proto__']: 'x' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchConfig('demo', { A: 'nul\0' }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchConfig('demo', { A: 'x'.repeat(300 * 1024) }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchConfig('demo', { A: 5 as never }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchConfig('nope', { A: '1' }))).toBe(
      'FLOTILLA_CONTROLLER_APP_NOT_FOUND',
    );
    expect((await h.controller.getApp('demo')).latestRelease).toBe(0);
    expect(
      await code(
        h.controller.createBuild('demo', { type: 'git', dir: '/nonexistent', sha: sha(1) }),
      ),
    ).toBe('FLOTILLA_CONTROLLER_INVALID_INPUT');
    expect(
      await code(h.controller.createBuild('demo', { type: 'git', dir: h.dir, sha: 'HEAD' })),
    ).toBe('FLOTILLA_CONTROLLER_INVALID_INPUT');
    expect(await code(h.controller.createBuild('demo', { type: 'tarball', path: h.dir }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.createBuild('demo', { type: 'weird' } as never))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await h.controller.listBuilds('demo')).toEqual([]);
    expect(await code(h.controller.getBuild('demo', '../x'))).toBe(
      'FLOTILLA_CONTROLLER_BUILD_NOT_FOUND',
    );
    expect(await code(h.controller.getRelease('demo', 'v0'))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.getRelease('demo', 7))).toBe(
      'FLOTILLA_CONTROLLER_RELEASE_NOT_FOUND',
    );
    expect(await code(h.controller.patchFormation('demo', { web: { quantity: 1 } }))).toBe(
      'FLOTILLA_CONTROLLER_NO_BUILD',
    );
    expect(await code(h.controller.addDomain('demo', 'not a domain'))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.addDomain('demo', 'a/b.example.com'))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.run('demo', { command: 'true' }))).toBe(
      'FLOTILLA_CONTROLLER_NOT_CONFIGURED',
    );
  });

  it('refuses a formation of an unknown type, a bad quantity or size', async () => {
    h = await harness();
    await deployed(h);
    const code = (p: Promise<unknown>): Promise<string | undefined> =>
      p.then(
        () => undefined,
        (e: unknown) => (isFlotillaError(e) ? e.code : String(e)),
      );
    expect(await code(h.controller.patchFormation('demo', { db: { quantity: 1 } }))).toBe(
      'FLOTILLA_CONTROLLER_UNKNOWN_PROCESS_TYPE',
    );
    expect(await code(h.controller.patchFormation('demo', { toString: { quantity: 1 } }))).toBe(
      'FLOTILLA_CONTROLLER_UNKNOWN_PROCESS_TYPE',
    );
    expect(await code(h.controller.patchFormation('demo', { web: { quantity: -1 } }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchFormation('demo', { web: { quantity: 1.5 } }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchFormation('demo', { web: { quantity: NaN } }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchFormation('demo', { web: { size: 'huge' } }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.patchFormation('demo', {}))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await code(h.controller.restart('demo', { batchSize: 0 }))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect((await h.controller.getFormation('demo')).map((f) => f.quantity)).toEqual([1, 0]);
  });
});
