// The same push on a cluster: `flotilla server` and a second `flotilla host` on one real etcd,
// each a host agent; slugs travel from the API to the other host over HTTP with the token.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireDocker } from '../../../../scripts/docker.mjs';
import { releaseEtcd } from '../../../../test/support/etcd.js';
import {
  cli,
  etcdStore,
  getApp,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let server: TestServer | undefined;
let host: TestServer | undefined;
let router: TestServer | undefined;
let apiOnly: TestServer | undefined;
let store: string;

interface HostJson {
  id: string;
  state: string;
  jobs: number;
  drain: boolean;
  reason?: string;
}
const app = 'e2e-cluster';

beforeAll(async () => {
  store = await etcdStore('paas');
  // Room for 4 standard dynos on each host (--host-cpu 2000), so that 'no host with room' is
  // reached with few dynos on any machine.
  server = await startServer({
    args: ['--store', store, '--host-id', 'host-a', '--stop-jobs', '--host-cpu', '2000'],
  });
  // host-b advertises a name, not the address it listens on: it and its jobs are dialled there.
  host = await startServer({
    command: 'host',
    args: [
      '--store',
      store,
      '--host-id',
      'host-b',
      '--stop-jobs',
      '--advertise-host',
      'localhost',
      '--host-cpu',
      '2000',
    ],
    env: { FLOTILLA_TOKEN: server.token },
  });
}, 120_000);

afterAll(async () => {
  await apiOnly?.stop();
  await router?.stop();
  await host?.stop();
  await server?.stop();
  for (const s of [apiOnly, router, host, server]) if (s !== undefined) await removeDir(s.dataDir);
  await releaseEtcd();
}, 60_000);

describe('two host agents on one etcd', { timeout: 180_000 }, () => {
  it('lists both hosts, each at the address it advertises', async () => {
    const s = server as TestServer;
    const hosts = await waitFor('both hosts up', async () => {
      const h = JSON.parse((await cli(s, ['hosts', '--json'])).stdout) as {
        id: string;
        state: string;
        address: string;
      }[];
      return h.filter((x) => x.state === 'up').length === 2 ? h : undefined;
    });
    expect(hosts.map((h) => h.id).sort()).toEqual(['host-a', 'host-b']);
    expect(hosts.find((h) => h.id === 'host-a')?.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(hosts.find((h) => h.id === 'host-b')?.address).toMatch(/^localhost:\d+$/);
  });

  it('a push deploys, and scaled to 2 the dynos spread over both hosts and both answer', async () => {
    const s = server as TestServer;
    const repo = await sampleRepo(s, 'node');
    expect((await cli(s, ['create', app], repo)).code).toBe(0);
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 180_000,
    });
    expect(push.code, push.stderr).toBe(0);
    expect((await getApp(s, app)).status).toBe(200);
    expect((await cli(s, ['ps:scale', 'web=2', '-a', app])).code).toBe(0);
    const dynos = await waitFor('2 web dynos up', async () => {
      const d = (await ps(s, app)).filter((x) => x.state === 'up');
      return d.length === 2 ? d : undefined;
    });
    expect(new Set(dynos.map((d) => d.host))).toEqual(new Set(['host-a', 'host-b']));
    const answered = await waitFor('answers from both dynos', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = await getApp(s, app);
        if (r.status === 200) seen.add((JSON.parse(r.body) as { dyno: string }).dyno);
      }
      return seen.size === 2 ? seen : undefined;
    });
    expect([...answered].sort()).toEqual(['web.1', 'web.2']);
    // Logs of the dyno on the other host come through the API.
    const logs = await waitFor('logs of both dynos', async () => {
      const l = await cli(s, ['logs', '-n', '200', '-a', app]);
      return /app\[web\.1\]/.test(l.stdout) && /app\[web\.2\]/.test(l.stdout)
        ? l.stdout
        : undefined;
    });
    expect(logs).toMatch(/listening on \d+/);
  });

  it('hosts:drain moves the dynos off a host (hosts shows it draining, then empty); hosts:undrain ends it', async () => {
    const s = server as TestServer;
    const hosts = async (): Promise<HostJson[]> =>
      JSON.parse((await cli(s, ['hosts', '--json'])).stdout) as HostJson[];
    // Bad ids are refused before anything is written, with what to fix.
    const unknown = await cli(s, ['hosts:drain', 'host-zz']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/host host-zz has never registered/);
    const slash = await cli(s, ['hosts:drain', 'host-b/x']);
    expect(slash.code).toBe(1);
    expect(slash.stderr).toMatch(/a host id is a DNS label/);
    const long = await cli(s, ['hosts:drain', 'host-b', '--reason', 'x'.repeat(257)]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/reason: .*256/);
    expect((await hosts()).every((h) => !h.drain && h.state === 'up')).toBe(true);

    const drain = await cli(s, ['hosts:drain', 'host-b', '--reason', 'kernel upgrade']);
    expect(drain.code, drain.stderr).toBe(0);
    const b = (await hosts()).find((h) => h.id === 'host-b');
    expect(b).toMatchObject({ state: 'draining', drain: true, reason: 'kernel upgrade' });
    expect((await cli(s, ['hosts'])).stdout).toMatch(/host-b\s+draining.*kernel upgrade/);
    const moved = await waitFor('both dynos up on host-a, none left on host-b', async () => {
      const d = await ps(s, app);
      const emptied = (await hosts()).find((h) => h.id === 'host-b')?.jobs === 0;
      return emptied && d.length === 2 && d.every((x) => x.state === 'up' && x.host === 'host-a')
        ? d
        : undefined;
    });
    expect(moved).toHaveLength(2);
    expect((await getApp(s, app)).status).toBe(200);

    expect((await cli(s, ['hosts:undrain', 'host-b'])).code).toBe(0);
    expect((await hosts()).find((h) => h.id === 'host-b')).toMatchObject({
      state: 'up',
      drain: false,
    });
  });

  it('dynos that find no host with room: ps says how many are missing, the server log why', async () => {
    const s = server as TestServer;
    // Two hosts of 2000 millicores each, standard dynos of 500: one dyno more than fits.
    const cpu = JSON.parse((await cli(s, ['hosts', '--json'])).stdout) as {
      capacity: { cpu: number };
    }[];
    const fits = cpu.reduce((n, h) => n + Math.floor(h.capacity.cpu / 500), 0);
    expect((await cli(s, ['ps:scale', `web=${fits + 1}`, '-a', app])).code).toBe(0);
    const table = await waitFor(`${fits} dynos up and 1 missing`, async () => {
      const out = (await cli(s, ['ps', '-a', app])).stdout;
      return out.includes(`web: ${fits + 1} wanted, ${fits} up`) ? out : undefined;
    });
    expect(table).toMatch(/flotilla hosts/);
    await waitFor('the scheduler says why in the server log', async () =>
      /1 web dyno\(s\) of e2e-cluster cannot be placed: .*add capacity or lower the count/.test(
        s.output(),
      )
        ? true
        : undefined,
    );
    expect((await cli(s, ['ps:scale', 'web=2', '-a', app])).code).toBe(0);
    await waitFor('back to 2 dynos, none missing', async () => {
      const out = (await cli(s, ['ps', '-a', app])).stdout;
      return !out.includes('wanted') && (await ps(s, app)).length === 2 ? true : undefined;
    });
  });

  it('a router of its own (flotilla router) serves the app too', async () => {
    router = await startServer({ command: 'router', args: ['--store', store] });
    const r = await waitFor('the app through the second router', async () => {
      const a = await getApp(router as TestServer, app);
      return a.status === 200 ? a : undefined;
    });
    expect(JSON.parse(r.body)).toMatchObject({ message: 'Hello from Flotilla' });
  });

  it('flotilla run on a server without a host agent (--no-host) runs the command there', async () => {
    apiOnly = await startServer({
      args: ['--store', store, '--host-id', 'api-only', '--no-host', '--no-router', '--stop-jobs'],
      env: { FLOTILLA_TOKEN: (server as TestServer).token },
    });
    // Its artifact mirror copies the slugs first (until then a run, a config:set or a rollback
    // through it is refused as if the slug were collected).
    const slugs = async (dir: string): Promise<string> =>
      JSON.stringify((await readdir(join(dir, 'artifacts')).catch(() => [])).sort());
    const want = await slugs((server as TestServer).dataDir);
    const s = apiOnly;
    await waitFor('the slugs copied', async () =>
      (await slugs(s.dataDir)) === want ? true : undefined,
    );
    const r = await cli(apiOnly, ['run', 'echo one-off $DYNO; exit 3', '-a', app]);
    expect(r.stdout, r.stderr).toMatch(/one-off run\.1/);
    expect(r.code).toBe(3);
  });
});

// A cluster of a docker host (the server, --driver docker, which builds images) and a process
// host: a Dockerfile app's dynos go to the docker host only (its agent tags it
// flotilla.artifact.image; image releases are constrained to that tag). Before, the scheduler
// spread them, and the one on the process host crashed: `... is an image: the process driver
// runs slugs`.
describe('a docker host and a process host on one etcd', { timeout: 180_000 }, () => {
  const imageApp = 'e2e-cluster-image';
  let docker: Awaited<ReturnType<typeof acquireDocker>> | undefined;
  let dockerServer: TestServer | undefined;
  let processHost: TestServer | undefined;

  beforeAll(async () => {
    docker = await acquireDocker();
    const images = await etcdStore('paas-images');
    dockerServer = await startServer({
      args: ['--store', images, '--driver', 'docker', '--host-id', 'docker-a', '--stop-jobs'],
      env: { FLOTILLA_DOCKER_HOST: docker.socketPath },
    });
    processHost = await startServer({
      command: 'host',
      args: ['--store', images, '--host-id', 'process-b', '--stop-jobs'],
      env: { FLOTILLA_TOKEN: dockerServer.token },
    });
  }, 300_000);

  afterAll(async () => {
    await processHost?.stop();
    await dockerServer?.stop();
    for (const s of [processHost, dockerServer]) if (s !== undefined) await removeDir(s.dataDir);
    // The app's containers and images go too, also after a failed test (the stack image stays).
    if (docker !== undefined) {
      const client = new Docker({ socketPath: docker.socketPath });
      const containers = await client.listContainers({
        all: true,
        filters: JSON.stringify({ label: [`flotilla.app=${imageApp}`] }),
      });
      for (const c of containers) await client.getContainer(c.Id).remove({ force: true });
      const images = await client.listImages({
        filters: JSON.stringify({ reference: [`flotilla/${imageApp}`] }),
      });
      for (const i of images) await client.getImage(i.Id).remove({ force: true });
    }
    await docker?.release();
  }, 120_000);

  it('hosts shows the docker host tagged flotilla.artifact.image, the process host not; a Dockerfile app scaled to 2 runs both dynos on the docker host', async () => {
    const s = dockerServer as TestServer;
    const hosts = await waitFor('both hosts up', async () => {
      const h = JSON.parse((await cli(s, ['hosts', '--json'])).stdout) as {
        id: string;
        state: string;
        tags: Record<string, string>;
      }[];
      return h.filter((x) => x.state === 'up').length === 2 ? h : undefined;
    });
    expect(Object.fromEntries(hosts.map((h) => [h.id, h.tags]))).toEqual({
      'docker-a': { 'flotilla.artifact.image': 'true' },
      'process-b': {},
    });
    const repo = await sampleRepo(s, 'dockerfile');
    expect((await cli(s, ['create', imageApp], repo)).code).toBe(0);
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 180_000,
    });
    expect(push.code, push.stderr).toBe(0);
    expect((await cli(s, ['ps:scale', 'web=2', '-a', imageApp])).code).toBe(0);
    const dynos = await waitFor('2 web dynos up', async () => {
      const d = await ps(s, imageApp);
      if (d.some((x) => x.state === 'crashed')) throw new Error(JSON.stringify(d));
      return d.filter((x) => x.state === 'up').length === 2 ? d : undefined;
    });
    expect(dynos.map((d) => d.host)).toEqual(['docker-a', 'docker-a']);
    const r = await getApp(s, imageApp);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ message: 'Hello from Flotilla' });
  });
});
