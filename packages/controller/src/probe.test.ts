// Hostile use: races between controllers, close and abort mid-operation, an engine closed
// under a deploy, bad tarballs and artifacts, huge config, stalled event consumers.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { Controller } from './controller.js';
import { ProcfileBuilder } from './procfile-builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

const WEB_APP = { Procfile: 'web: node server.js\n', 'server.js': '// server\n' };

let h: Harness | undefined;
const extra: Controller[] = [];
afterEach(async () => {
  for (const c of extra.splice(0)) await c.close();
  await h?.close();
  h = undefined;
});

function cur(): Harness {
  if (h === undefined) throw new Error('no harness');
  return h;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (isFlotillaError(e) ? e.code : String(e)),
  );
}

async function second(hh: Harness): Promise<Controller> {
  const c = new Controller({
    store: hh.store,
    artifacts: hh.artifacts,
    workDir: join(hh.dir, 'work-b'),
    builder: new ProcfileBuilder(),
    routes: hh.routes,
    leaseTtlMs: 2000,
    deploy: { readyTimeoutMs: 5000, stopTimeoutMs: 5000 },
  });
  extra.push(c);
  await c.start();
  return c;
}

async function deployed(hh: Harness, c: Controller = hh.controller): Promise<void> {
  await c.createApp({ name: 'demo' });
  const build = await c.createBuild('demo', {
    type: 'git',
    dir: await hh.source(WEB_APP),
    sha: sha(1),
  });
  expect((await c.waitForBuild('demo', build.id)).status).toBe('succeeded');
}

describe('two controllers on one store', () => {
  it('race to create one app: exactly one wins', async () => {
    h = await harness();
    const b = await second(h);
    const results = await Promise.all([
      codeOf(h.controller.createApp({ name: 'demo' })),
      codeOf(b.createApp({ name: 'demo' })),
    ]);
    expect(results.sort()).toEqual(['FLOTILLA_CONTROLLER_APP_EXISTS', undefined].sort());
  });

  it('race config changes: every change lands in its own release', async () => {
    h = await harness();
    const b = await second(h);
    await h.controller.createApp({ name: 'demo' });
    const changes = Array.from({ length: 10 }, (_, i) =>
      (i % 2 === 0 ? cur().controller : b).patchConfig('demo', { [`K${i}`]: String(i) }),
    );
    const releases = await Promise.all(changes);
    expect(new Set(releases.map((r) => r?.version)).size).toBe(10);
    const config = await h.controller.getConfig('demo');
    expect(Object.keys(config).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `K${i}`).sort(),
    );
  });

  it('race deploys of one app: one at a time across controllers, the loser refused or queued', async () => {
    h = await harness({
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
      // Both refusals must land while the slow deploy runs: its ready timeout is that window
      // (1 s was tight on a loaded CI machine), and the test's own length.
      controller: { deploy: { readyTimeoutMs: 5000, stopTimeoutMs: 5000 } },
    });
    await deployed(h);
    const b = await second(h);
    const slow = h.controller.patchConfig('demo', { SLOW: '1' }).catch((e: unknown) => e);
    await expect
      .poll(() =>
        cur()
          .controller.listDeployments('demo')
          .then((d) => d[0]?.status),
      )
      .toBe('running');
    expect(await codeOf(b.restart('demo', { onBusy: 'refuse' }))).toBe(
      'FLOTILLA_CONTROLLER_DEPLOY_IN_PROGRESS',
    );
    expect(
      await codeOf(b.patchFormation('demo', { web: { quantity: 2 } }, { onBusy: 'refuse' })),
    ).toBe('FLOTILLA_CONTROLLER_DEPLOY_IN_PROGRESS');
    expect(isFlotillaError(await slow, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    expect((await b.restart('demo')).status).toBe('succeeded');
  });

  it('closing a controller mid-deploy rolls its deploy back and frees the app for the others', async () => {
    h = await harness({
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
      controller: { deploy: { readyTimeoutMs: 60_000, stopTimeoutMs: 5000 } },
    });
    await deployed(h);
    const b = await second(h);
    const slow = b.patchConfig('demo', { SLOW: '1' }).catch((e: unknown) => e);
    await expect
      .poll(() =>
        cur()
          .controller.listDeployments('demo')
          .then((d) => d[0]?.status),
      )
      .toBe('running');
    // Closing b aborts its deploy: rolled back, lock released, v1 still serving.
    await b.close();
    expect(isFlotillaError(await slow, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    expect((await h.controller.listDeployments('demo'))[0]?.status).toBe('rolled-back');
    expect((await h.controller.restart('demo', { onBusy: 'refuse' })).status).toBe('succeeded');
  });
});

describe('close and abort mid-operation', () => {
  it('close() during a build fails it (never left running) and ends its output', async () => {
    let started!: () => void;
    const building = new Promise<void>((resolve) => (started = resolve));
    h = await harness({
      controller: {
        builder: {
          build: async ({ signal }) => {
            started();
            await new Promise((_, reject) =>
              signal?.addEventListener('abort', () => reject(signal.reason as Error)),
            );
            throw new Error('unreachable');
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    await building;
    const reader = await second(h);
    await h.controller.close();
    const done = await reader.waitForBuild('demo', build.id);
    expect(done.status).toBe('failed');
    expect(await codeOf(h.controller.getApp('demo'))).toBe('FLOTILLA_CONTROLLER_CLOSED');
  });

  it('close() does not wait for a builder that ignores its signal; the build is failed', async () => {
    let started!: () => void;
    const building = new Promise<void>((resolve) => (started = resolve));
    h = await harness({
      controller: {
        builder: {
          build: () => {
            started();
            return new Promise(() => undefined);
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    await building;
    const reader = await second(h);
    await h.controller.close();
    expect((await reader.waitForBuild('demo', build.id)).status).toBe('failed');
  });

  it('an aborted deploy is rolled back', async () => {
    h = await harness({
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
      controller: { deploy: { readyTimeoutMs: 60_000, stopTimeoutMs: 5000 } },
    });
    await deployed(h);
    const ac = new AbortController();
    const slow = h.controller
      .patchConfig('demo', { SLOW: '1' }, { signal: ac.signal })
      .catch((e: unknown) => e);
    await expect
      .poll(() =>
        cur()
          .controller.listDeployments('demo')
          .then((d) => d[0]?.status),
      )
      .toBe('running');
    ac.abort();
    const err = await slow;
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    expect((err as Error).message).toContain('cancelled');
    expect((await h.cluster.formations({ app: 'demo' })).map((f) => f.release)).toEqual(['v1']);
  });

  it('a store closed under a deploy makes it reject, not hang', async () => {
    h = await harness({
      agents: { behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run') },
      controller: { deploy: { readyTimeoutMs: 60_000, stopTimeoutMs: 5000 } },
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
    await h.store.close();
    const err = await slow;
    expect(isFlotillaError(err)).toBe(true);
    await h.controller.close(); // and close does not hang either
  });

  it('calls before start() or after close() are refused with CLOSED', async () => {
    h = await harness();
    const c = new Controller({
      store: h.store,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'w3'),
    });
    expect(await codeOf(c.listApps())).toBe('FLOTILLA_CONTROLLER_CLOSED');
    await c.close();
    await c.close();
    expect(await codeOf(c.start())).toBe('FLOTILLA_CONTROLLER_CLOSED');
  });
});

describe('bad input that reaches the build', () => {
  it('a tarball with an entry escaping its directory fails the build with the slug code', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const tarball = join(h.dir, 'evil.tgz');
    // A tarball holding an entry named ../escape (what a crafted upload can hold).
    const py = [
      'import io, sys, tarfile',
      "t = tarfile.open(sys.argv[1], 'w:gz')",
      "i = tarfile.TarInfo('../escape'); d = b'x'; i.size = len(d); t.addfile(i, io.BytesIO(d))",
      't.close()',
    ].join('\n');
    expect(spawnSync('python3', ['-c', py, tarball]).status).toBe(0);
    const build = await h.controller.createBuild('demo', { type: 'tarball', path: tarball });
    const done = await h.controller.waitForBuild('demo', build.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/FLOTILLA_SLUG_/);
  });

  it('a builder whose slug does not match its digest fails the build with ARTIFACT_INVALID', async () => {
    h = await harness({
      controller: {
        builder: {
          build: async (input) => {
            const r = await new ProcfileBuilder().build(input);
            return { ...r, sha256: 'f'.repeat(64) };
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    const done = await h.controller.waitForBuild('demo', build.id);
    expect(done.status).toBe('failed');
    expect(done.error).toContain('FLOTILLA_CONTROLLER_ARTIFACT_INVALID');
    expect(await h.artifacts.list()).toEqual([]);
  });

  it('a builder flooding its output is kept to 4 MiB, a line without newline split at 16 KiB', async () => {
    h = await harness({
      controller: {
        builder: {
          build: async (input) => {
            input.onOutput('x'.repeat(40 * 1024)); // one line, no newline yet
            input.onOutput('\n');
            const chunk = `${'y'.repeat(1023)}\n`.repeat(64);
            for (let i = 0; i < 100; i++) input.onOutput(chunk); // 6.4 MiB
            return new ProcfileBuilder().build(input);
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    const lines: string[] = [];
    for await (const l of h.controller.buildOutput('demo', build.id)) lines.push(l.line);
    expect(lines.slice(1, 4).map((l) => l.length)).toEqual([16 * 1024, 16 * 1024, 8 * 1024]);
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    expect(bytes).toBeLessThan(4 * 1024 * 1024 + 64 * 1024);
    expect(lines[lines.length - 1]).toMatch(/output truncated/);
    expect((await h.controller.getBuild('demo', build.id)).status).toBe('succeeded');
  });

  it('a build declaring process types a release cannot hold fails, naming the type', async () => {
    const types: Record<string, string>[] = [
      {},
      { 'Web Server': 'x' },
      { web: 'x'.repeat(70 * 1024) },
      { 'a/b': 'x' },
      // More types than a formation record can hold (it failed at deploy, with the store's
      // size error, after the release was written).
      Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`w${i}`, 'sleep 1000'])),
      // Commands that each fit but together overflow the release record.
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`w${i}`, 'x'.repeat(60 * 1024)])),
    ];
    let n = 0;
    h = await harness({
      controller: {
        builder: {
          build: async (input) => ({
            ...(await new ProcfileBuilder().build(input)),
            processTypes: types[n++] ?? {},
          }),
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    for (let i = 0; i < types.length; i++) {
      const build = await h.controller.createBuild('demo', {
        type: 'git',
        dir: await h.source(WEB_APP),
        sha: sha(i + 1),
      });
      const done = await h.controller.waitForBuild('demo', build.id);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('FLOTILLA_CONTROLLER_BUILD_FAILED');
    }
    expect((await h.controller.getApp('demo')).latestRelease).toBe(0);
  });

  it('config larger than a release can hold is refused up front', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    const big = Object.fromEntries(
      Array.from({ length: 4 }, (_, i) => [`V${i}`, 'x'.repeat(200 * 1024)]),
    );
    expect(await codeOf(h.controller.patchConfig('demo', big))).toBe(
      'FLOTILLA_CONTROLLER_INVALID_INPUT',
    );
    expect(await h.controller.getConfig('demo')).toEqual({});
  });

  it('a build of an app destroyed meanwhile ends failed, and leaves no records behind', async () => {
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    h = await harness({
      controller: {
        builder: {
          build: async (input) => {
            await gate;
            return new ProcfileBuilder().build(input);
          },
        },
      },
    });
    await h.controller.createApp({ name: 'demo' });
    const build = await h.controller.createBuild('demo', {
      type: 'git',
      dir: await h.source(WEB_APP),
      sha: sha(1),
    });
    const destroying = h.controller.destroyApp('demo');
    openGate();
    await destroying;
    await expect
      .poll(() =>
        cur()
          .store.list('controller/builds/demo/')
          .then((r) => r.kvs.length),
      )
      .toBe(0);
    expect(await codeOf(h.controller.getBuild('demo', build.id))).toBe(
      'FLOTILLA_CONTROLLER_APP_NOT_FOUND',
    );
  });
});

describe('records that cannot be read', () => {
  it('are reported as errors with their key, and the others still listed and reaped', async () => {
    h = await harness();
    const errors: Error[] = [];
    h.controller.on('error', (e) => errors.push(e));
    await h.controller.createApp({ name: 'demo' });
    await h.store.put('controller/apps/bad', '{not json');
    await h.store.put(
      'controller/builds/demo/b-000000000000',
      JSON.stringify({ id: 'b-000000000000' }),
    );
    // A build of a controller that is gone: the reaper fails it, despite its bad neighbour.
    const orphan = {
      id: 'b-111111111111',
      app: 'demo',
      source: 'abc1234',
      sourceType: 'git',
      builder: 'buildpack',
      status: 'running',
      createdAt: Date.now(),
      owner: 'gone',
    };
    await h.store.put('controller/builds/demo/b-111111111111', JSON.stringify(orphan));
    const b = await second(h);
    expect((await b.waitForBuild('demo', 'b-111111111111')).status).toBe('failed');
    expect((await h.controller.listApps()).map((a) => a.name)).toEqual(['demo']);
    expect((await h.controller.listBuilds('demo')).map((x) => x.id)).toEqual(['b-111111111111']);
    const codes = errors.map((e) => [(e as { code?: string }).code, (e as { key?: string }).key]);
    expect(codes).toContainEqual(['FLOTILLA_CONTROLLER_INVALID_RECORD', 'controller/apps/bad']);
    expect(codes).toContainEqual([
      'FLOTILLA_CONTROLLER_INVALID_RECORD',
      'controller/builds/demo/b-000000000000',
    ]);
  });
});

describe('event streams', () => {
  it('any number of streams open at once print no MaxListenersExceeded warning', async () => {
    h = await harness();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    // A signal of its own for each (one shared by all would be the caller's to raise).
    const acs = Array.from({ length: 12 }, () => new AbortController());
    try {
      const streams = acs.map((ac) =>
        cur().controller.events({ signal: ac.signal })[Symbol.asyncIterator](),
      );
      const firsts = streams.map((s) => s.next());
      await h.controller.createApp({ name: 'many-streams' });
      for (const first of await Promise.all(firsts)) expect(first.value?.type).toBe('app.created');
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
      for (const ac of acs) ac.abort();
    }
  });

  it('a consumer that stops reading ends with EVENT_BACKLOG instead of growing memory', async () => {
    h = await harness();
    const stream = h.controller.events({ maxBacklog: 5 });
    for (let i = 0; i < 10; i++) await h.controller.createApp({ name: `app-${i}` });
    const got: string[] = [];
    const err = await (async () => {
      for await (const e of stream) got.push(e.type);
    })().catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_EVENT_BACKLOG')).toBe(true);
    expect(got.length).toBe(5);
    expect(
      await codeOf(
        Promise.resolve().then(() => cur().controller.events({ types: ['nope' as never] })),
      ),
    ).toBe('FLOTILLA_CONTROLLER_INVALID_INPUT');
  });

  it('follows a build output with a signal: aborting ends the iteration quietly', async () => {
    h = await harness();
    await h.controller.createApp({ name: 'demo' });
    expect(
      await codeOf(
        (async () => {
          for await (const l of cur().controller.buildOutput('demo', 'b-000000000000')) void l;
        })(),
      ),
    ).toBe('FLOTILLA_CONTROLLER_BUILD_NOT_FOUND');
  });
});
