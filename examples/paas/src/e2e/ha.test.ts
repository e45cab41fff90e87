// High availability without a leader: two full `flotilla server`s (API, scheduler, controller,
// host agent, router) on one real etcd. Server A is SIGKILLed with its dynos, as a machine lost;
// server B's scheduler moves the app's dyno to its own host, B's router serves it, and B's API
// and controller go on deploying (a config change makes a release and rolls it out).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseEtcd } from '../../../../test/support/etcd.js';
import {
  alive,
  api,
  cli,
  etcdStore,
  getApp,
  killJobs,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let a: TestServer | undefined;
let b: TestServer | undefined;
let store: string;
const app = 'e2e-ha';

beforeAll(async () => {
  store = await etcdStore('paas-ha');
  a = await startServer({ args: ['--store', store, '--host-id', 'ha-a', '--stop-jobs'] });
}, 60_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  for (const s of [b, a]) if (s !== undefined) await removeDir(s.dataDir);
  await releaseEtcd();
}, 60_000);

interface Answer {
  message: string;
  dyno: string;
  release: string;
}

/** The app's answer through a server's router, once it is a 200. */
function answer(s: TestServer, what: string, timeoutMs = 30_000): Promise<Answer> {
  return waitFor(
    what,
    async () => {
      const r = await getApp(s, app);
      return r.status === 200 ? (JSON.parse(r.body) as Answer) : undefined;
    },
    timeoutMs,
  );
}

describe('two servers on one etcd, one of them lost', { timeout: 60_000 }, () => {
  it('a push through A answers through both routers', async () => {
    const sa = a as TestServer;
    const repo = await sampleRepo(sa, 'node');
    expect((await cli(sa, ['create', app], repo)).code).toBe(0);
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: sa.env,
      timeoutMs: 60_000,
    });
    expect(push.code, push.stderr).toBe(0);
    // B joins the running cluster after the push, so the one web dyno is on A's host.
    b = await startServer({
      args: ['--store', store, '--host-id', 'ha-b', '--stop-jobs'],
      env: { FLOTILLA_TOKEN: sa.token },
    });
    const sb = b;
    const [dyno] = await ps(sa, app);
    expect(dyno).toMatchObject({ type: 'web', state: 'up', host: 'ha-a' });
    expect(await answer(sa, "the app through A's router")).toMatchObject({ dyno: 'web.1' });
    expect(await answer(sb, "the app through B's router")).toMatchObject({ dyno: 'web.1' });
    const hosts = await waitFor("both hosts up in B's API", async () => {
      const h = JSON.parse((await cli(sb, ['hosts', '--json'])).stdout) as { id: string }[];
      return h.length === 2 ? h : undefined;
    });
    expect(hosts.map((h) => h.id).sort()).toEqual(['ha-a', 'ha-b']);
    // B keeps a copy of the slug A built (its artifact mirror), so it survives A.
    const builds = await api<{ artifact?: { sha256: string } }[]>(sa, 'GET', `/apps/${app}/builds`);
    const sha = builds.body[0]?.artifact?.sha256;
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
    await waitFor("the slug served by B's API", async () => {
      const r = await fetch(`${sb.apiUrl}/artifacts/${sha}`, {
        headers: { authorization: `Bearer ${sb.token}` },
      });
      await r.body?.cancel();
      return r.status === 200 ? true : undefined;
    });
  });

  it('A SIGKILLed with its dynos: the dyno moves to B, B serves it, B deploys', async () => {
    const sa = a as TestServer;
    const sb = b as TestServer;
    const oldPid = Number((await getApp(sb, app, '/pid')).body);
    expect(alive(oldPid)).toBe(true);
    // A machine lost: the server and every job it started die at once.
    const exited = new Promise((r) => sa.process.once('exit', r));
    sa.process.kill('SIGKILL');
    await killJobs(sa.dataDir);
    await exited;
    await waitFor("A's dyno to be gone", () => Promise.resolve(alive(oldPid) ? undefined : true));

    const hosts = await waitFor(
      "A's host down in B's API (its heartbeat lease ran out)",
      async () => {
        const h = JSON.parse((await cli(sb, ['hosts', '--json'])).stdout) as {
          id: string;
          state: string;
        }[];
        return h.some((x) => x.id === 'ha-a' && x.state === 'up') ? undefined : h;
      },
      30_000,
    );
    expect(hosts.find((h) => h.id === 'ha-b')).toMatchObject({ state: 'up' });
    let seen: unknown;
    const dynos = await waitFor(
      "the web dyno up on B's host",
      async () => {
        const d = await ps(sb, app);
        seen = d;
        return d.length === 1 && d[0]?.state === 'up' && d[0].host === 'ha-b' ? d : undefined;
      },
      30_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; ps said ${JSON.stringify(seen)}; B wrote:\n${sb.output()}`);
    });
    expect(dynos[0]).toMatchObject({ type: 'web', release: 'v1' });
    const after = await answer(sb, "the app through B's router, served from B's host");
    expect(after).toMatchObject({ message: 'Hello from Flotilla', dyno: 'web.1' });
    expect(Number((await getApp(sb, app, '/pid')).body)).not.toBe(oldPid);

    const set = await cli(sb, ['config:set', 'MESSAGE=after the failover', '-a', app]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout + set.stderr).toMatch(/done, v2/);
    expect(await answer(sb, 'the new release through B')).toMatchObject({
      message: 'after the failover',
      release: 'v2',
    });
    const rolled = await ps(sb, app);
    expect(rolled.map((d) => [d.state, d.host, d.release])).toEqual([['up', 'ha-b', 'v2']]);
  });
});
