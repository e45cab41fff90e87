// A deploy interrupted by a kill of its controller's process is rolled back when a controller
// starts again on the same store: the new release's jobs do not keep serving beside the old ones.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterState } from '@flotilla/cluster';
import { SqliteStore } from '@flotilla/sqlite';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { ProcfileBuilder } from './procfile-builder.js';

const fixture = fileURLToPath(new URL('../test-fixtures/deploy-child.mjs', import.meta.url));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('a deploy whose controller was killed mid-rollout', () => {
  it('is rolled back after a restart: only the live release keeps a formation', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-controller-deploy-crash-'));
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
    expect(line).toBe('deploying demo');
    child.kill('SIGKILL');
    await once(child, 'exit');

    const store = new SqliteStore({ path: db });
    cleanups.push(() => store.close());
    const cluster = new ClusterState({ store });
    cleanups.push(() => cluster.close());
    // Killed mid-rollout: the old release and the new one both have a web job.
    const before = await cluster.formations({ app: 'demo' });
    expect(before.map((f) => [f.release, f.processes.web?.count]).sort()).toEqual([
      ['v1', 1],
      ['v2', 1],
    ]);
    const controller = new Controller({
      store,
      artifacts: new DirectoryArtifactStore({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'work2'),
      builder: new ProcfileBuilder(),
    });
    cleanups.push(() => controller.close());
    await controller.start();
    // Its owner's lease runs out (1 s): the deploy is rolled back, v1 alone has jobs.
    const finished = new Promise((resolve) => controller.once('deploy.finished', resolve));
    const [deployment] = await controller.listDeployments('demo');
    if (deployment?.status === 'running') await finished;
    const [ended] = await controller.listDeployments('demo');
    expect(ended?.release).toBe('v2');
    expect(ended?.status).toBe('rolled-back');
    expect(ended?.reason).toMatch(/stopped before it finished; rolled back, v1 serves/);
    const after = await cluster.formations({ app: 'demo' });
    expect(after.map((f) => [f.release, f.processes.web?.count])).toEqual([['v1', 1]]);
    expect((await controller.getApp('demo')).liveRelease).toBe('v1');
  });
});
