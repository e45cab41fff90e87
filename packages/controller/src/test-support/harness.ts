// Shared set-up of the controller's tests: a MemoryStore, a real Scheduler, fake agents, a
// controller with the ProcfileBuilder and a directory artifact store in a temporary directory.
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterState } from '@flotilla/cluster';
import { Scheduler } from '@flotilla/scheduler';
import { MemoryStore, type Store } from '@flotilla/store';
import { Controller, type ControllerOptions } from '../controller.js';
import { DirectoryArtifactStore } from '../directory-artifact-store.js';
import { ProcfileBuilder } from '../procfile-builder.js';
import { FakeAgents, type FakeAgentsOptions } from '../testing/fake-agents.js';
import { MemoryRouteTable } from '../testing/memory-route-table.js';

export interface Harness {
  store: Store;
  dir: string;
  controller: Controller;
  scheduler: Scheduler;
  agents: FakeAgents;
  routes: MemoryRouteTable;
  artifacts: DirectoryArtifactStore;
  cluster: ClusterState;
  /** Writes an app source tree and returns its directory. */
  source(files: Record<string, string>): Promise<string>;
  close(): Promise<void>;
}

export async function harness(
  options: {
    controller?: Partial<ControllerOptions>;
    agents?: Partial<FakeAgentsOptions>;
    store?: Store;
    /** Use the controller's default builder (@flotilla/buildpack) instead of the ProcfileBuilder. */
    defaultBuilder?: boolean;
  } = {},
): Promise<Harness> {
  const store = options.store ?? new MemoryStore();
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-controller-'));
  const scheduler = new Scheduler({ store, restartBackoffMs: [60_000] });
  const agents = new FakeAgents({ store, ...options.agents });
  const routes = new MemoryRouteTable();
  const artifacts = new DirectoryArtifactStore({ dir: join(dir, 'artifacts') });
  const cluster = new ClusterState({ store });
  let controller: Controller;
  try {
    controller = new Controller({
      store,
      artifacts,
      workDir: join(dir, 'work'),
      ...(options.defaultBuilder === true ? {} : { builder: new ProcfileBuilder() }),
      routes,
      leaseTtlMs: 2000,
      deploy: { readyTimeoutMs: 5000, stopTimeoutMs: 5000 },
      ...options.controller,
    });
  } catch (err) {
    // Options a test expects to be refused: nothing of this harness may outlive the test.
    await agents.close();
    await scheduler.close();
    await cluster.close();
    if (options.store === undefined) await store.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let n = 0;
  const h: Harness = {
    store,
    dir,
    controller,
    scheduler,
    agents,
    routes,
    artifacts,
    cluster,
    async source(files) {
      const src = join(dir, `src-${n++}`);
      for (const [name, content] of Object.entries(files)) {
        await mkdir(join(src, name, '..'), { recursive: true });
        await writeFile(join(src, name), content);
      }
      return src;
    },
    async close() {
      await controller.close();
      await agents.close();
      await scheduler.close();
      await cluster.close();
      if (options.store === undefined) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await scheduler.start();
    await agents.start();
    await controller.start();
  } catch (err) {
    await h.close();
    throw err;
  }
  return h;
}

/** A git-like sha for tests. */
export function sha(n: number): string {
  return n.toString(16).padStart(40, 'a');
}

/**
 * Writes a buildpack into `dir` whose compile says `-----> Compiling` and `started`, waits until
 * the file `go` exists beside it, then says `finished`.
 */
export async function waitingBuildpack(dir: string): Promise<{ dir: string; go: string }> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  const go = join(dir, 'go');
  const script = (body: string): string => `#!/bin/sh\n${body}\n`;
  await writeFile(join(dir, 'bin', 'detect'), script('echo Waiting'));
  await writeFile(
    join(dir, 'bin', 'compile'),
    script(
      `echo "-----> Compiling"\necho "       started"\nwhile [ ! -f '${go}' ]; do sleep 0.05; done\necho "       finished"`,
    ),
  );
  await writeFile(join(dir, 'bin', 'release'), script("echo '--- {}'"));
  for (const f of ['detect', 'compile', 'release']) await chmod(join(dir, 'bin', f), 0o755);
  return { dir, go };
}
