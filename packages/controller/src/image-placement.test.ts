// Where an image release's dynos may run: only on hosts whose driver runs images (their agents
// tag them flotilla.artifact.image), as the controller constrains the formation of every
// image release (deploy, scale, rollback); slug releases run on every host. Fake agents: one
// whose driver runs images, one whose driver runs slugs only (it reports image jobs crashed,
// as a real process-driver agent does).
import { afterEach, describe, expect, it } from 'vitest';
import type { LineImageBuildOptions } from './builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const IMAGE = { 'flotilla.artifact.image': 'true' };
const DOCKER_APP = { Dockerfile: 'FROM flotilla/stack\n', 'server.js': '// server\n' };
const SLUG_APP = { Procfile: 'web: node server.js\n', 'server.js': '// server\n' };

const docker = {
  client: {},
  buildImage: async (o: LineImageBuildOptions) => ({
    image: o.tag,
    id: 'sha256:0',
    processTypes: { web: 'node server.js' },
    baseImages: [],
  }),
};

async function cluster(
  hosts: readonly string[] = ['docker-host', 'process-host'],
  tags?: (id: string) => Record<string, string>,
): Promise<Harness> {
  return harness({
    controller: { docker },
    agents: {
      hosts,
      runsImages: (id) => id.startsWith('docker-'),
      ...(tags === undefined ? {} : { tags }),
    },
  });
}

let n = 0;
/** Pushes a source to `app` and waits until its release is live. */
async function push(hh: Harness, app: string, files: Record<string, string>): Promise<string> {
  const src = await hh.source({ ...files, [`v${++n}.js`]: '//\n' });
  const build = await hh.controller.createBuild(app, { type: 'git', dir: src, sha: sha(n) });
  const outcome = await hh.controller.waitForDeploy(app, build.id);
  expect(outcome.status, outcome.reason).toBe('live');
  return (await hh.controller.getApp(app)).liveRelease as string;
}

/** The constraints of web in the app's live cluster formation. */
async function webConstraints(hh: Harness, app: string): Promise<unknown> {
  const formations = await hh.cluster.formations({ app });
  expect(formations.length).toBe(1);
  return formations[0]?.processes.web?.constraints;
}

/** Waits until `count` web dynos are up, then says where each runs; none may have crashed. */
async function upOn(hh: Harness, app: string, count: number): Promise<string[]> {
  await expect
    .poll(async () => (await hh.controller.listDynos(app)).filter((d) => d.state === 'up').length)
    .toBe(count);
  const dynos = await hh.controller.listDynos(app);
  expect(dynos.filter((d) => d.state === 'crashed')).toEqual([]);
  return dynos
    .filter((d) => d.state === 'up')
    .map((d) => d.host)
    .sort();
}

describe('image releases run only on hosts whose driver runs images', () => {
  it('a Dockerfile app deployed and scaled to 3: every dyno on the docker host, none crashed on the process host; a slug app runs on the process host too', async () => {
    h = await cluster();
    await h.controller.createApp({ name: 'img' });
    await push(h, 'img', DOCKER_APP);
    expect(await webConstraints(h, 'img')).toEqual(IMAGE);
    await h.controller.patchFormation('img', { web: { quantity: 3 } });
    expect(await upOn(h, 'img', 3)).toEqual(['docker-host', 'docker-host', 'docker-host']);
    expect(await webConstraints(h, 'img')).toEqual(IMAGE);

    await h.controller.createApp({ name: 'slug' });
    await push(h, 'slug', SLUG_APP);
    expect(await webConstraints(h, 'slug')).toBeUndefined();
    await h.controller.patchFormation('slug', { web: { quantity: 2 } });
    // Spread: the docker host holds three jobs already, so slug jobs go to the process host.
    expect(await upOn(h, 'slug', 2)).toContain('process-host');
  });

  it('a scale puts the constraint back on a live image formation written without it (by a controller before this rule): every dyno on the docker host', async () => {
    h = await cluster();
    await h.controller.createApp({ name: 'old' });
    await push(h, 'old', DOCKER_APP);
    // As an older controller wrote it: no constraints.
    const [live] = await h.cluster.formations({ app: 'old' });
    const web = live?.processes.web;
    if (live === undefined || web === undefined) throw new Error('no live web formation');
    await h.cluster.setFormation({
      ...live,
      processes: { web: { count: web.count, resources: web.resources } },
    });
    expect(await webConstraints(h, 'old')).toBeUndefined();
    await h.controller.patchFormation('old', { web: { quantity: 2 } });
    expect(await webConstraints(h, 'old')).toEqual(IMAGE);
    expect(await upOn(h, 'old', 2)).toEqual(['docker-host', 'docker-host']);
  });

  it('with no host that runs images, the deploy fails saying so, and no dyno crashed on the process host', async () => {
    h = await harness({
      controller: { docker, deploy: { readyTimeoutMs: 300, stopTimeoutMs: 5000 } },
      agents: { hosts: ['process-host'], runsImages: () => false },
    });
    await h.controller.createApp({ name: 'img' });
    const src = await h.source(DOCKER_APP);
    const build = await h.controller.createBuild('img', { type: 'git', dir: src, sha: sha(99) });
    const outcome = await h.controller.waitForDeploy('img', build.id);
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.reason).toMatch(
      /only 0 of 1 web job\(s\) were placed: the release is a container image, and no host that is up runs images .*start one within 300 ms/,
    );
    expect(h.agents.started).toBe(0);
    expect(await h.cluster.formations({ app: 'img' })).toEqual([]);
  });

  it('a rollback from an image release to a slug release drops the constraint, and back to the image puts it again', async () => {
    h = await cluster();
    await h.controller.createApp({ name: 'flip' });
    await push(h, 'flip', SLUG_APP); // v1
    expect(await webConstraints(h, 'flip')).toBeUndefined();
    await push(h, 'flip', DOCKER_APP); // v2
    expect(await webConstraints(h, 'flip')).toEqual(IMAGE);
    expect(await upOn(h, 'flip', 1)).toEqual(['docker-host']);
    await h.controller.rollback('flip', 'v1'); // v3: the slug again
    expect((await h.controller.getApp('flip')).liveRelease).toBe('v3');
    expect(await webConstraints(h, 'flip')).toBeUndefined();
    await h.controller.rollback('flip', 'v2'); // v4: the image again
    expect(await webConstraints(h, 'flip')).toEqual(IMAGE);
    await h.controller.patchFormation('flip', { web: { quantity: 2 } });
    expect(await upOn(h, 'flip', 2)).toEqual(['docker-host', 'docker-host']);
  });

  it("an operator's constraints on the live formation stay through a deploy, a scale and a rollback", async () => {
    const zones: Record<string, string> = {
      'docker-a': 'a',
      'docker-b': 'b',
      'process-a': 'a',
    };
    h = await cluster(Object.keys(zones), (id) => ({ zone: zones[id] as string }));
    await h.controller.createApp({ name: 'zoned' });
    await push(h, 'zoned', SLUG_APP); // v1
    // The operator pins the app to zone a on its live formation (no controller API does).
    const [live] = await h.cluster.formations({ app: 'zoned' });
    const web = live?.processes.web;
    if (live === undefined || web === undefined) throw new Error('no live web formation');
    await h.cluster.setFormation({
      ...live,
      processes: { ...live.processes, web: { ...web, constraints: { zone: 'a' } } },
    });
    await push(h, 'zoned', DOCKER_APP); // v2
    expect(await webConstraints(h, 'zoned')).toEqual({ zone: 'a', ...IMAGE });
    await h.controller.patchFormation('zoned', { web: { quantity: 3 } });
    expect(await webConstraints(h, 'zoned')).toEqual({ zone: 'a', ...IMAGE });
    expect(await upOn(h, 'zoned', 3)).toEqual(['docker-a', 'docker-a', 'docker-a']);
    await h.controller.rollback('zoned', 'v1'); // v3: the slug, still in zone a
    expect(await webConstraints(h, 'zoned')).toEqual({ zone: 'a' });
    const hosts = await upOn(h, 'zoned', 3);
    expect(hosts.every((x) => x.endsWith('-a'))).toBe(true);
  });
});
