// A build interrupted by a kill of its controller's process is marked failed when a controller
// starts again on the same store (a SqliteStore file), never left running and never released.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '@flotilla/sqlite';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { ProcfileBuilder } from './procfile-builder.js';

const fixture = fileURLToPath(new URL('../test-fixtures/build-child.mjs', import.meta.url));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('a build whose controller was killed', () => {
  it('is marked failed after a restart, its output ended, and nothing released', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-controller-crash-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'Procfile'), 'web: node server.js\n');
    const db = join(dir, 'state.db');
    const child = spawn(process.execPath, [fixture, db, join(dir, 'work'), src], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const lines = createInterface({ input: child.stdout });
    const [line] = (await once(lines, 'line')) as [string];
    const [word, app, buildId] = line.split(' ');
    expect(word).toBe('running');
    child.kill('SIGKILL');
    await once(child, 'exit');

    const store = new SqliteStore({ path: db });
    cleanups.push(() => store.close());
    const controller = new Controller({
      store,
      artifacts: new DirectoryArtifactStore({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'work2'),
      builder: new ProcfileBuilder(),
    });
    cleanups.push(() => controller.close());
    await controller.start();
    expect((await controller.getBuild(app as string, buildId as string)).status).toBe('running');
    // Its owner's lease runs out (1 s): the build is failed, its output ended.
    const build = await controller.waitForBuild(app as string, buildId as string, {
      signal: AbortSignal.timeout(15_000),
    });
    expect(build.status).toBe('failed');
    expect(build.error).toMatch(/stopped before it finished/);
    const out: string[] = [];
    for await (const l of controller.buildOutput(app as string, buildId as string))
      out.push(l.line);
    expect(out).toContain('-----> compiling for ever');
    expect(out[out.length - 1]).toMatch(/^Build failed: /);
    expect((await controller.getApp(app as string)).latestRelease).toBe(0);
    expect(await controller.listReleases(app as string)).toEqual([]);
  });
});
