// Two builds of one app at once on one work directory (two controllers, or two processes):
// the app's build cache is locked by @flotilla/buildpack, and the second build waits its turn.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFlotillaError } from '@flotilla/core';
import { MemoryStore } from '@flotilla/store';
import { afterEach, describe, expect, it } from 'vitest';
import type { Build, BuildOutputLine } from './build.js';
import { Controller, type ControllerOptions } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { harness, sha, waitingBuildpack, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
let second: Controller | undefined;
afterEach(async () => {
  await second?.close();
  second = undefined;
  await h?.close();
  h = undefined;
});

/** Follows a build's output until a line matches; the lines read so far. */
async function until(
  lines: AsyncIterable<BuildOutputLine>,
  match: (line: string) => boolean,
): Promise<string[]> {
  const seen: string[] = [];
  for await (const l of lines) {
    seen.push(l.line);
    if (match(l.line)) return seen;
  }
  throw new Error(`the output ended without the line looked for:\n${seen.join('\n')}`);
}

/**
 * A harness (its controller `main`), a second controller `other` on its store (`extra` added
 * to its options) and app `demo` with a first build started on `main`, whose buildpack waits
 * for `pack.go`; `startNext` starts a build of another commit of `demo` on `other`.
 */
async function twoBuildsOfOneApp(extra: Partial<ControllerOptions> = {}): Promise<{
  main: Controller;
  other: Controller;
  pack: { dir: string; go: string };
  first: Build;
  startNext: () => Promise<Build>;
}> {
  const hh = (h = await harness({ defaultBuilder: true }));
  const other = (second = new Controller({
    store: hh.store,
    artifacts: hh.artifacts,
    workDir: join(hh.dir, 'work'),
    routes: hh.routes,
    leaseTtlMs: 2000,
    ...extra,
  }));
  await other.start();
  const pack = await waitingBuildpack(join(hh.dir, 'waiting-pack'));
  await hh.controller.createApp({ name: 'demo' });
  const options = { buildpacks: [pack.dir], deploy: false };
  const source = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };
  const build = async (controller: Controller, n: number): Promise<Build> =>
    controller.createBuild(
      'demo',
      { type: 'git', dir: await hh.source(source), sha: sha(n) },
      options,
    );
  return {
    main: hh.controller,
    other,
    pack,
    first: await build(hh.controller, 1),
    startNext: () => build(other, 2),
  };
}

describe('a build of an app whose build cache another build holds', () => {
  it('waits for it, says so in its output, then builds', async () => {
    const { main, other, pack, first, startNext } = await twoBuildsOfOneApp();
    await until(main.buildOutput('demo', first.id), (l) => l === '       started');
    // The first build holds the cache now; the second controller's build of the app waits.
    const next = await startNext();
    const waited = await until(other.buildOutput('demo', next.id), (l) =>
      l.includes('waiting for the previous build of demo to finish'),
    );
    expect(waited.join('\n')).not.toContain('CACHE_LOCKED');
    expect((await other.getBuild('demo', next.id)).status).toBe('running');
    await writeFile(pack.go, '');
    expect((await main.waitForBuild('demo', first.id)).status).toBe('succeeded');
    const done = await other.waitForBuild('demo', next.id);
    expect(done.status, done.error).toBe('succeeded');
  });

  it('gives up after cacheLockTimeoutMs with FLOTILLA_BUILDPACK_CACHE_LOCKED, the wait said', async () => {
    const { main, other, pack, first, startNext } = await twoBuildsOfOneApp({
      cacheLockTimeoutMs: 600,
    });
    try {
      await until(main.buildOutput('demo', first.id), (l) => l === '       started');
      const next = await startNext();
      const done = await other.waitForBuild('demo', next.id);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('FLOTILLA_BUILDPACK_CACHE_LOCKED');
      const lines: string[] = [];
      for await (const l of other.buildOutput('demo', next.id)) lines.push(l.line);
      expect(lines.filter((l) => l.includes('waiting for the previous build')).length).toBe(1);
    } finally {
      await writeFile(pack.go, '');
    }
    expect((await main.waitForBuild('demo', first.id)).status).toBe('succeeded');
  });

  it('a controller closed while its build waits ends that build as failed, at once', async () => {
    const { main, other, pack, first, startNext } = await twoBuildsOfOneApp();
    try {
      await until(main.buildOutput('demo', first.id), (l) => l === '       started');
      const next = await startNext();
      await until(other.buildOutput('demo', next.id), (l) =>
        l.includes('waiting for the previous build of demo to finish'),
      );
      await other.close();
      const after = await main.getBuild('demo', next.id);
      expect(after.status).toBe('failed');
    } finally {
      await writeFile(pack.go, '');
    }
    expect((await main.waitForBuild('demo', first.id)).status).toBe('succeeded');
  });

  it('refuses a cacheLockTimeoutMs that is no whole number of ms from 0', async () => {
    const store = new MemoryStore();
    try {
      for (const cacheLockTimeoutMs of [-1, Number.NaN, 1.5, Infinity])
        try {
          new Controller({
            store,
            artifacts: new DirectoryArtifactStore({ dir: '/nonexistent/artifacts' }),
            workDir: '/nonexistent/work',
            cacheLockTimeoutMs,
          });
          expect.unreachable(String(cacheLockTimeoutMs));
        } catch (err) {
          expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_INVALID_INPUT'), String(err)).toBe(true);
          expect((err as { path?: string }).path).toBe('cacheLockTimeoutMs');
        }
    } finally {
      await store.close();
    }
  });
});
