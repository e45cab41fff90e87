// Durability: state lives in the store, so a server killed and started again on the same data
// directory knows every app, release and config var, and adopts the dynos that kept running.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  cli,
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

let first: TestServer | undefined;
let second: TestServer | undefined;
let dataDir: string;
const app = 'e2e-restart';

beforeAll(async () => {
  first = await startServer(); // jobs keep running when it stops
  dataDir = first.dataDir;
}, 60_000);

afterAll(async () => {
  await first?.stop();
  await second?.stop();
  await killJobs(dataDir);
  await removeDir(dataDir);
}, 60_000);

describe('a server killed and started again', { timeout: 180_000 }, () => {
  it('keeps apps, releases and config, and the app keeps answering', async () => {
    const s1 = first as TestServer;
    const repo = await sampleRepo(s1, 'node');
    expect((await cli(s1, ['create', app], repo)).code).toBe(0);
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s1.env,
      timeoutMs: 180_000,
    });
    expect(push.code, push.stderr).toBe(0);
    expect((await cli(s1, ['config:set', 'MESSAGE=durable', '-a', app])).code).toBe(0);
    const [dyno] = await ps(s1, app);
    s1.process.kill('SIGKILL');
    await new Promise((r) => s1.process.once('exit', r));

    second = await startServer({ dataDir });
    const s2 = second;
    const apps = JSON.parse((await cli(s2, ['apps', '--json'])).stdout) as { name: string }[];
    expect(apps.map((a) => a.name)).toContain(app);
    const config = JSON.parse((await cli(s2, ['config', '--json', '-a', app])).stdout) as Record<
      string,
      string
    >;
    expect(config.MESSAGE).toBe('durable');
    const releases = JSON.parse(
      (await cli(s2, ['releases', '--json', '-a', app])).stdout,
    ) as unknown[];
    expect(releases).toHaveLength(2);
    const answer = await waitFor('the app to answer through the new router', async () => {
      const r = await getApp(s2, app);
      return r.status === 200 ? r : undefined;
    });
    expect(JSON.parse(answer.body)).toMatchObject({ message: 'durable' });
    // The dyno was adopted, not restarted.
    const after = await ps(s2, app);
    expect(after.map((d) => d.id)).toEqual([dyno?.id]);

    // Stopped, the harness leaves no dyno running (it kept running across the first stop).
    const job = JSON.parse(
      await readFile(join(dataDir, 'jobs', 'jobs', String(dyno?.id), 'job.json'), 'utf8'),
    ) as { pid: number };
    expect(alive(job.pid)).toBe(true);
    await s2.stop();
    await waitFor('the dyno to be gone', () => Promise.resolve(alive(job.pid) ? undefined : true));
  });
});
