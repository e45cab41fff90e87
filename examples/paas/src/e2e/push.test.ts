// The reference PaaS end to end: a real `flotilla server` (SQLite, ProcessDriver, router), the
// real CLI, real git pushes of examples/apps/node.
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  cli,
  commitAll,
  getApp,
  git,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let s: TestServer;
let repo: string;
const app = 'e2e-node';

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
  repo = await sampleRepo(s, 'node');
}, 60_000);

afterAll(async () => {
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

const message = async (): Promise<string> => {
  const r = await getApp(s, app);
  expect(r.status).toBe(200);
  return (JSON.parse(r.body) as { message: string }).message;
};

describe('flotilla end to end (embedded: SQLite, processes)', { timeout: 180_000 }, () => {
  it('refuses an API call without the right token, and does nothing', async () => {
    const none = await fetch(`${s.apiUrl}/apps`, { method: 'POST', body: '{"name":"sneaky"}' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ id: 'unauthorized' });
    const wrong = await api(s, 'POST', '/apps', { name: 'sneaky' }, 'not-the-token-at-all');
    expect(wrong.status).toBe(401);
    const apps = await api<{ name: string }[]>(s, 'GET', '/apps');
    expect(apps.body.map((a) => a.name)).not.toContain('sneaky');
  });

  it('creates the app and its git remote', async () => {
    const r = await cli(s, ['create', app], repo);
    expect(r.stderr).toContain(`done, ${app}`);
    expect(r.code).toBe(0);
    const remotes = await git(s, repo, 'remote', '-v');
    expect(remotes.stdout).toContain(`${s.apiUrl}/git/${app}.git`);
    const info = await cli(s, ['apps:info', '--json'], repo); // the app from the git remote
    expect(JSON.parse(info.stdout)).toMatchObject({ name: app });
  });

  it('refuses a push without the token, and nothing is deployed', async () => {
    const url = `${s.apiUrl.replace('://', '://flotilla:wrong-token-0000000@')}/git/${app}.git`;
    const r = await run('git', ['push', url, 'main'], { cwd: repo, env: s.env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Authentication failed|401/);
    const refs = await git(s, repo, 'ls-remote', 'flotilla');
    expect(refs.stdout.trim()).toBe('');
    const builds = await api<unknown[]>(s, 'GET', `/apps/${app}/builds`);
    expect(builds.body).toEqual([]);
  });

  it('git push deploys: the build streams back, the push ends with the URL, the router answers 200', async () => {
    const r = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 180_000,
    });
    expect(r.stderr).toContain('remote: -----> Building');
    // The deploy's steps stream back while they happen, before the result line.
    expect(r.stderr).toMatch(/remote: {8}web: 1 of 1 new job\(s\) ready\s[^]*deployed to/);
    expect(r.stderr).toContain(`http://${app}.localhost:${s.routerPort}`);
    expect(r.code, r.stderr).toBe(0);
    expect(await message()).toBe('Hello from Flotilla');
  });

  it('config:set changes what the app answers', async () => {
    const r = await cli(s, ['config:set', 'MESSAGE=changed by config', '-a', app]);
    expect(r.code, r.stderr).toBe(0);
    expect(await message()).toBe('changed by config');
    const get = await cli(s, ['config:get', 'MESSAGE', '-a', app]);
    expect(get.stdout).toBe('changed by config\n');
  });

  it('ps:scale web=3 runs 3 dynos, and ps --json lists them', async () => {
    const r = await cli(s, ['ps:scale', 'web=3', '-a', app]);
    expect(r.code, r.stderr).toBe(0);
    const dynos = await waitFor('3 web dynos up', async () => {
      const d = await ps(s, app);
      return d.filter((x) => x.type === 'web' && x.state === 'up').length === 3 ? d : undefined;
    });
    expect(new Set(dynos.map((d) => d.name))).toEqual(new Set(['web.1', 'web.2', 'web.3']));
    for (const d of dynos)
      expect(d).toMatchObject({
        type: 'web',
        state: 'up',
        host: expect.any(String),
        release: expect.stringMatching(/^v\d+$/),
      });
  });

  it('a killed dyno is replaced', async () => {
    const pid = Number((await getApp(s, app, '/pid')).body);
    expect(pid).toBeGreaterThan(1);
    process.kill(pid, 'SIGKILL');
    await waitFor(
      'the killed dyno to be replaced: 3 web dynos up again, none with the old pid',
      async () => {
        const up = (await ps(s, app)).filter((d) => d.state === 'up');
        if (up.length !== 3) return undefined;
        const pids = new Set<number>();
        for (let i = 0; i < 12; i++) pids.add(Number((await getApp(s, app, '/pid')).body));
        return pids.has(pid) ? undefined : true;
      },
    );
  });

  it('logs show the app output', async () => {
    await getApp(s, app, '/hello-logs');
    const r = await waitFor('the request in the logs', async () => {
      const l = await cli(s, ['logs', '-n', '200', '-a', app]);
      return l.stdout.includes('GET /hello-logs 200') ? l : undefined;
    });
    expect(r.stdout).toMatch(/app\[web\.\d\]: listening on \d+/);
    const web1 = await cli(s, ['logs', '-n', '200', '-d', 'web.1', '-a', app]);
    expect(web1.stdout).not.toMatch(/app\[web\.[23]\]/);
  });

  it('rollback serves the previous release again', async () => {
    const before = await cli(s, ['releases', '--json', '-a', app]);
    const releases = JSON.parse(before.stdout) as { id: string; version: number }[];
    const r = await cli(s, ['rollback', '-a', app]);
    expect(r.code, r.stderr).toBe(0);
    expect(await message()).toBe('Hello from Flotilla');
    const after = JSON.parse((await cli(s, ['releases', '--json', '-a', app])).stdout) as {
      version: number;
      description: string;
    }[];
    expect(after[0]?.version).toBe((releases[0]?.version ?? 0) + 1);
  });

  it('a broken push fails, says why, and the old release still serves', async () => {
    const live = JSON.parse((await cli(s, ['apps:info', '--json', '-a', app])).stdout) as {
      liveRelease: string;
    };
    await writeFile(join(repo, 'Procfile'), 'web: node does-not-exist.js\n');
    await commitAll(s, repo, 'broken');
    const r = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toContain('Push rejected');
    expect(r.stderr).toContain('pre-receive hook declined');
    // The failed dyno's last words come with the refusal.
    expect(r.stderr).toMatch(/remote: +\| .*Cannot find module/);
    expect(await message()).toBe('Hello from Flotilla');
    const now = JSON.parse((await cli(s, ['apps:info', '--json', '-a', app])).stdout) as {
      liveRelease: string;
    };
    expect(now.liveRelease).toBe(live.liveRelease);
    // The branch keeps the commit that serves: fix and push again.
    await git(s, repo, 'revert', '--no-edit', 'HEAD');
  });

  it('a deploy under continuous load fails no request', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let ok = 0;
    const failures: string[] = [];
    let loading = true;
    const worker = async (): Promise<void> => {
      while (loading) {
        try {
          const r = await getApp(s, app, '/', agent);
          if (r.status === 200) ok++;
          else failures.push(`HTTP ${r.status}: ${r.body.slice(0, 200)}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await writeFile(join(repo, 'deploy-marker.txt'), `${Date.now()}\n`);
    await commitAll(s, repo, 'deploy under load');
    const push = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 240_000,
    });
    loading = false;
    await Promise.all(workers);
    agent.destroy();
    expect(push.code, push.stderr).toBe(0);
    // What the rolling deploy waits for is said as it happens.
    expect(push.stderr).toContain('web: 3 of 3 new job(s) ready');
    expect(push.stderr).toMatch(/web: stopping \d old job\(s\)/);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
  });
});
