// The store's engine killed under a running server (etcd, SIGKILL): calls fail with a 503 that
// says to retry, nothing half-written; etcd back, the server answers again and the app never
// stopped serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type TestEtcd } from '../../../../test/support/etcd.js';
import {
  api,
  cli,
  getApp,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let etcd: TestEtcd | undefined;
let s: TestServer | undefined;
const app = 'e2e-engine';

beforeAll(async () => {
  etcd = await startEtcd();
  s = await startServer({
    args: ['--store', `etcd://127.0.0.1:${etcd.clientPort}/paas-engine`, '--stop-jobs'],
  });
}, 120_000);

afterAll(async () => {
  await etcd?.resume().catch(() => undefined);
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
  await etcd?.stop();
}, 60_000);

describe('etcd killed under the server', { timeout: 180_000 }, () => {
  it('calls get 503 meanwhile, the app keeps serving, and all is back with etcd', async () => {
    const server = s as TestServer;
    const repo = await sampleRepo(server, 'node');
    expect((await cli(server, ['create', app], repo)).code).toBe(0);
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: server.env,
      timeoutMs: 180_000,
    });
    expect(push.code, push.stderr).toBe(0);

    await (etcd as TestEtcd).halt('SIGKILL');
    const down = await api<{ id: string; message: string; code: string }>(server, 'POST', '/apps', {
      name: 'during-outage',
    });
    expect(down.status).toBe(503);
    expect(down.body.id).toBe('unavailable');
    const cliDown = await cli(server, ['apps']);
    expect(cliDown.code).toBe(1);
    // The router keeps the routes and backends it has: the app still answers.
    expect((await getApp(server, app)).status).toBe(200);

    await (etcd as TestEtcd).resume();
    const apps = await waitFor('the API to answer again', async () => {
      const r = await api<{ name: string }[]>(server, 'GET', '/apps');
      return r.status === 200 ? r.body : undefined;
    });
    expect(apps.map((a) => a.name)).toEqual([app]);
    expect((await cli(server, ['config:set', 'MESSAGE=after the outage', '-a', app])).code).toBe(0);
    expect(JSON.parse((await getApp(server, app)).body)).toMatchObject({
      message: 'after the outage',
    });
  }, 180_000);
});
