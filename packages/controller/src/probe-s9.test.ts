// Probe (session 9): one-offs against an app's destroy. Real jobs: a DriverOneOffRunner on a
// ProcessDriver of its own, whose list() says what still runs; formation dynos on fake agents.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AssignedJob } from '@flotilla/cluster';
import { isFlotillaError } from '@flotilla/core';
import { ArtifactCache, ProcessDriver } from '@flotilla/host';
import { DriverOneOffRunner } from './driver-one-off-runner.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
let driver: ProcessDriver | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const j of (await driver?.list()) ?? [])
    if (j.state === 'running') await driver?.stop(j.id, { graceMs: 100 });
  await driver?.close();
  driver = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function setUp(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-probe-s9-'));
  dirs.push(dir);
  driver = await ProcessDriver.create({ stateDir: join(dir, 'state'), logPollMs: 50 });
  const runner = new DriverOneOffRunner({
    driver,
    artifacts: new ArtifactCache({ dir: join(dir, 'cache') }),
    workDir: join(dir, 'run'),
    stopGraceMs: 300,
  });
  h = await harness({ controller: { runner } });
  return h;
}

async function running(): Promise<string[]> {
  return (await (driver as ProcessDriver).list())
    .filter((j) => j.state === 'running')
    .map((j) => j.id);
}

describe('destroyApp and one-offs', () => {
  it('a one-off started while the destroy waits for a deploy (minHealthyMs) is stopped or refused, not left running', async () => {
    const hh = await setUp();
    await hh.controller.createApp({ name: 'demo' });
    const src = await hh.source({ Procfile: 'web: node server.js\n', 'server.js': '//\n' });
    const b = await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    expect((await hh.controller.waitForBuild('demo', b.id)).status).toBe('succeeded');
    // A deploy that holds the app's lock while its new job waits out 3 s of minHealthyMs.
    const ac = new AbortController();
    const waiting = (async () => {
      for await (const e of hh.controller.events({ app: 'demo', signal: ac.signal }))
        if (e.type === 'deploy.progress' && e.message.includes('must stay up')) return;
    })();
    const deploying = hh.controller
      .deploy('demo', 'v1', { minHealthyMs: 3000, readyTimeoutMs: 20_000 })
      .catch((e: unknown) => e);
    await waiting;
    ac.abort();
    // The destroy waits for that lock; a run started meanwhile...
    const destroying = hh.controller.destroyApp('demo');
    const run = await hh.controller
      .run('demo', { command: 'sleep 60' })
      .catch((e: unknown) => e as Error);
    await destroying;
    await deploying;
    if (run instanceof Error) {
      // ...is refused as the app is going,
      expect(isFlotillaError(run, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND'), String(run)).toBe(true);
    } else {
      // ...or has ended by the time the destroy resolved (it ran with the app's secrets).
      const settled = await Promise.race([run.exit.then(() => true), Promise.resolve(false)]);
      expect(settled).toBe(true);
    }
    expect(await running()).toEqual([]);
  });
});

describe('an app destroyed and created again under its name', () => {
  it("runs the new app's release on the host agents, not the old app's of the same number", async () => {
    // What each job is handed by its agent's watch: the config it would run with.
    const seen: string[] = [];
    h = await harness({
      agents: {
        behaviour: (job: AssignedJob) => {
          seen.push(`${job.record.app}/${job.record.release}: ${job.release?.config.SECRET}`);
          return 'run';
        },
      },
    });
    const life = async (secret: string): Promise<void> => {
      const hh = h as Harness;
      await hh.controller.createApp({ name: 'demo' });
      const src = await hh.source({ Procfile: 'web: node server.js\n', 'server.js': '//\n' });
      const b = await hh.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
      expect((await hh.controller.waitForBuild('demo', b.id)).status).toBe('succeeded');
      await hh.controller.patchConfig('demo', { SECRET: secret });
      expect((await hh.controller.getApp('demo')).liveRelease).toBe('v2');
    };
    await life('old');
    await h.controller.destroyApp('demo');
    await life('new');
    // The agents' watch kept the first app's v2 (its slug and its secrets) for the second's.
    expect(seen.filter((s) => s.startsWith('demo/v2')).at(-1)).toBe('demo/v2: new');
  });
});
