// The same push with the Docker driver against a real dockerd: slugs run in the stack image
// (built from this machine, never pulled), and a Dockerfile app is built into an image.
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireDocker } from '../../../../scripts/docker.mjs';
import {
  cli,
  getApp,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  type TestServer,
} from './harness.js';

let s: TestServer | undefined;
let docker: Awaited<ReturnType<typeof acquireDocker>> | undefined;

beforeAll(async () => {
  docker = await acquireDocker();
  s = await startServer({
    args: ['--driver', 'docker', '--stop-jobs'],
    env: { FLOTILLA_DOCKER_HOST: docker.socketPath },
  });
}, 600_000);

const APPS = ['e2e-docker-node', 'e2e-docker-image'] as const;

afterAll(async () => {
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
  // What the server made on dockerd for these apps goes too, also after a failed test: their
  // containers (the driver labels each with its app) and the images built for them
  // (`flotilla/<app>:<build>`). The stack image stays: it is shared and built once by digest.
  if (docker !== undefined) {
    const client = new Docker({ socketPath: docker.socketPath });
    for (const app of APPS) {
      const containers = await client.listContainers({
        all: true,
        filters: JSON.stringify({ label: [`flotilla.app=${app}`] }),
      });
      for (const c of containers) await client.getContainer(c.Id).remove({ force: true });
      const images = await client.listImages({
        filters: JSON.stringify({ reference: [`flotilla/${app}`] }),
      });
      for (const i of images) await client.getImage(i.Id).remove({ force: true });
    }
  }
  await docker?.release();
}, 120_000);

describe('flotilla server --driver docker', { timeout: 180_000 }, () => {
  it.each([
    ['node', APPS[0], 'Hello from Flotilla'],
    ['dockerfile', APPS[1], 'Hello from Flotilla'],
  ])(
    'a push of examples/apps/%s serves through the router',
    async (sample, app, message) => {
      const server = s as TestServer;
      const repo = await sampleRepo(server, sample);
      expect((await cli(server, ['create', app], repo)).code).toBe(0);
      const push = await run('git', ['push', 'flotilla', 'main'], {
        cwd: repo,
        env: server.env,
        timeoutMs: 300_000,
      });
      expect(push.code, push.stderr).toBe(0);
      expect(push.stderr).toContain(`http://${app}.localhost:${server.routerPort}`);
      const r = await getApp(server, app);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ message, dyno: 'web.1' });
      const [dyno] = await ps(server, app);
      expect(dyno).toMatchObject({ state: 'up', type: 'web' });
    },
    300_000,
  );

  it('apps:destroy of the Dockerfile app removes the image its build made', async () => {
    const server = s as TestServer;
    const app = APPS[1];
    const client = new Docker({ socketPath: (docker as { socketPath: string }).socketPath });
    const images = async (): Promise<string[]> =>
      (
        await client.listImages({ filters: JSON.stringify({ reference: [`flotilla/${app}`] }) })
      ).flatMap((i) => i.RepoTags ?? []);
    expect(await images()).toHaveLength(1);
    const r = await cli(server, ['apps:destroy', '-a', app, '--confirm', app]);
    expect(r.code, r.stderr).toBe(0);
    expect(await images()).toEqual([]);
    const containers = await client.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`flotilla.app=${app}`] }),
    });
    expect(containers).toEqual([]);
  });
});
