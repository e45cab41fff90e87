// Two builds of one app at once on one work directory (two controllers, or two processes):
// the app's build cache is locked by @flotilla/buildpack, and the second build waits its turn.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFlotillaError } from '@flotilla/core';
import { MemoryStore } from '@flotilla/store';
import { afterEach, describe, expect, it } from 'vitest';
import type { BuildOutputLine } from './build.js';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
let second: Controller | undefined;
afterEach(async () => {
  await second?.close();
  second = undefined;
  await h?.close();
  h = undefined;
});

/** A buildpack whose compile says `started`, then waits until the file `go` exists. */
async function waitingBuildpack(dir: string): Promise<{ dir: string; go: string }> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  const go = join(dir, 'go');
  const script = (body: string): string => `#!/bin/sh\n${body}\n`;
  await writeFile(join(dir, 'bin', 'detect'), script('echo Waiting'));
  await writeFile(
    join(dir, 'bin', 'compile'),
    script(`echo "       started"\nwhile [ ! -f '${go}' ]; do sleep 0.05; done`),
  );
  await writeFile(join(dir, 'bin', 'release'), script("echo '--- {}'"));
  for (const f of ['detect', 'compile', 'release']) await chmod(join(dir, 'bin', f), 0o755);
  return { dir, go };
}

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

describe('a build of an app whose build cache another build holds', () => {
  it('waits for it, says so in its output, then builds', async () => {
    h = await harness({ defaultBuilder: true });
    second = new Controller({
      store: h.store,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'work'),
      routes: h.routes,
      leaseTtlMs: 2000,
    });
    await second.start();
    const pack = await waitingBuildpack(join(h.dir, 'waiting-pack'));
    await h.controller.createApp({ name: 'demo' });
    const options = { buildpacks: [pack.dir], deploy: false };
    const source = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };
    const first = await h.controller.createBuild(
      'demo',
      { type: 'git', dir: await h.source(source), sha: sha(1) },
      options,
    );
    await until(h.controller.buildOutput('demo', first.id), (l) => l === '       started');
    // The first build holds the cache now; the second controller's build of the app waits.
    const next = await second.createBuild(
      'demo',
      { type: 'git', dir: await h.source(source), sha: sha(2) },
      options,
    );
    const waited = await until(second.buildOutput('demo', next.id), (l) =>
      l.includes('waiting for the previous build of demo to finish'),
    );
    expect(waited.join('\n')).not.toContain('CACHE_LOCKED');
    expect((await second.getBuild('demo', next.id)).status).toBe('running');
    await writeFile(pack.go, '');
    expect((await h.controller.waitForBuild('demo', first.id)).status).toBe('succeeded');
    const done = await second.waitForBuild('demo', next.id);
    expect(done.status, done.error).toBe('succeeded');
  });

  it('gives up after cacheLockTimeoutMs with FLOTILLA_BUILDPACK_CACHE_LOCKED, the wait said', async () => {
    h = await harness({ defaultBuilder: true });
    second = new Controller({
      store: h.store,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'work'),
      routes: h.routes,
      leaseTtlMs: 2000,
      cacheLockTimeoutMs: 600,
    });
    await second.start();
    const pack = await waitingBuildpack(join(h.dir, 'waiting-pack'));
    await h.controller.createApp({ name: 'demo' });
    const options = { buildpacks: [pack.dir], deploy: false };
    const source = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };
    const first = await h.controller.createBuild(
      'demo',
      { type: 'git', dir: await h.source(source), sha: sha(1) },
      options,
    );
    try {
      await until(h.controller.buildOutput('demo', first.id), (l) => l === '       started');
      const next = await second.createBuild(
        'demo',
        { type: 'git', dir: await h.source(source), sha: sha(2) },
        options,
      );
      const done = await second.waitForBuild('demo', next.id);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('FLOTILLA_BUILDPACK_CACHE_LOCKED');
      const lines: string[] = [];
      for await (const l of second.buildOutput('demo', next.id)) lines.push(l.line);
      expect(lines.filter((l) => l.includes('waiting for the previous build')).length).toBe(1);
    } finally {
      await writeFile(pack.go, '');
    }
    expect((await h.controller.waitForBuild('demo', first.id)).status).toBe('succeeded');
  });

  it('a controller closed while its build waits ends that build as failed, at once', async () => {
    h = await harness({ defaultBuilder: true });
    second = new Controller({
      store: h.store,
      artifacts: h.artifacts,
      workDir: join(h.dir, 'work'),
      routes: h.routes,
      leaseTtlMs: 2000,
    });
    await second.start();
    const pack = await waitingBuildpack(join(h.dir, 'waiting-pack'));
    await h.controller.createApp({ name: 'demo' });
    const options = { buildpacks: [pack.dir], deploy: false };
    const source = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };
    const first = await h.controller.createBuild(
      'demo',
      { type: 'git', dir: await h.source(source), sha: sha(1) },
      options,
    );
    try {
      await until(h.controller.buildOutput('demo', first.id), (l) => l === '       started');
      const next = await second.createBuild(
        'demo',
        { type: 'git', dir: await h.source(source), sha: sha(2) },
        options,
      );
      await until(second.buildOutput('demo', next.id), (l) =>
        l.includes('waiting for the previous build of demo to finish'),
      );
      await second.close();
      const after = await h.controller.getBuild('demo', next.id);
      expect(after.status).toBe('failed');
    } finally {
      await writeFile(pack.go, '');
    }
    expect((await h.controller.waitForBuild('demo', first.id)).status).toBe('succeeded');
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
