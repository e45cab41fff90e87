// The rest of the grammar on the Procfile sample (web and worker): scale types apart, logs of
// one type, one-off runs, the event stream, custom domains through the router, destroy.
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APPS,
  api,
  cli,
  getApp,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type DynoJson,
  type TestServer,
  type Answer,
} from './harness.js';

let s: TestServer;
const app = 'e2e-procfile';

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
  const repo = await sampleRepo(s, 'procfile');
  expect((await cli(s, ['create', app], repo)).code).toBe(0);
  const push = await run('git', ['push', 'flotilla', 'main'], {
    cwd: repo,
    env: s.env,
    timeoutMs: 180_000,
  });
  expect(push.code, push.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

const byHost = (host: string): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: s.routerPort, path: '/', headers: { host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });

describe('a web + worker app', { timeout: 180_000 }, () => {
  it('scales the worker apart from web, and logs -p shows only its lines', async () => {
    const scale = await cli(s, ['ps:scale', 'worker=1', '-a', app]);
    expect(scale.code, scale.stderr).toBe(0);
    expect(scale.stdout).toContain('worker=1');
    await waitFor('web.1 and worker.1 up', async () => {
      const up = (await ps(s, app)).filter((d) => d.state === 'up').map((d) => d.name);
      return up.includes('web.1') && up.includes('worker.1') ? true : undefined;
    });
    const logs = await waitFor('a worker tick in the logs', async () => {
      const l = await cli(s, ['logs', '-p', 'worker', '-a', app]);
      return l.stdout.includes('tick') ? l.stdout : undefined;
    });
    expect(logs).toMatch(/app\[worker\.1\]: worker worker\.1 tick \d+/);
    expect(logs).not.toContain('[web.1]');
  });

  it('logs -t follows: new lines arrive while it runs', async () => {
    const ac = new AbortController();
    const lines: string[] = [];
    const follow = (async () => {
      for await (const chunk of (
        await fetch(`${s.apiUrl}/apps/${app}/log-stream?tail=true&lines=0&type=worker`, {
          headers: { authorization: `Bearer ${s.token}` },
          signal: ac.signal,
        })
      ).body ?? []) {
        lines.push(Buffer.from(chunk as Uint8Array).toString());
        if (lines.join('').includes('tick')) return;
      }
    })();
    await follow;
    ac.abort();
    expect(lines.join('')).toMatch(/app\[worker\.1\]: worker worker\.1 tick \d+/);
  });

  it('run streams a one-off command back and exits with its status', async () => {
    const r = await cli(s, ['run', '-a', app, 'echo "out $DYNO"; echo "to stderr" >&2; exit 7']);
    expect(r.stdout).toContain('out run.1');
    expect(r.stderr).toContain('to stderr');
    expect(r.code).toBe(7);
  });

  it('ps lists one-off runs in their own section while they run; ps:stop stops one; ended ones are gone', async () => {
    type Listed = DynoJson & { command?: string; size?: string };
    const oneOffs = async (): Promise<Listed[]> =>
      ((await ps(s, app)) as Listed[]).filter((d) => d.command !== undefined);
    // Two runs at once, each a `flotilla run` whose call stays open while it runs.
    const first = cli(s, ['run', '-a', app, 'sleep 30']);
    const second = cli(s, ['run', '-a', app, 'echo ready; sleep 31']);
    const runs = await waitFor('two one-offs in ps --json', async () => {
      const r = await oneOffs();
      return r.length === 2 ? r : undefined;
    });
    expect(runs.map((r) => [r.type, r.state, r.size, r.release])).toEqual([
      ['run', 'up', 'standard', 'v1'],
      ['run', 'up', 'standard', 'v1'],
    ]);
    expect(runs.map((r) => r.command).sort()).toEqual(['echo ready; sleep 31', 'sleep 30']);
    for (const r of runs) expect(r.name).toMatch(/^run\.[0-9]{4}$/);
    expect(new Set(runs.map((r) => r.name)).size).toBe(2);
    const sleeper = runs.find((r) => r.command === 'sleep 30') as Listed;
    const other = runs.find((r) => r !== sleeper) as Listed;
    // The same names at the next look: a name holds for the run's life.
    expect((await oneOffs()).map((r) => r.name).sort()).toEqual(runs.map((r) => r.name).sort());

    const text = await cli(s, ['ps', '-a', app]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^web\.1 +up +v1/m); // the formation's table, unchanged
    expect(text.stdout).toContain('=== run: one-off processes (2)');
    expect(text.stdout).toMatch(
      new RegExp(
        `^${sleeper.name.replace('.', '\\.')} \\(standard\\): up [0-9]{4}/[0-9]{2}/[0-9]{2} [0-9:]{8} \\+0000 \\(~ [0-9]+s ago\\): sleep 30$`,
        'm',
      ),
    );

    // Refused rather than surprising: restarting a one-off, stopping a formation dyno or a
    // one-off that is not there.
    const restart = await cli(s, ['ps:restart', sleeper.name, '-a', app]);
    expect(restart.code).not.toBe(0);
    expect(restart.stderr).toContain(`${sleeper.name} is a one-off`);
    const web = await cli(s, ['ps:stop', 'web.1', '-a', app]);
    expect(web.code).not.toBe(0);
    expect(web.stderr).toContain('not a one-off dyno');
    const missing = await api(s, 'DELETE', `/apps/${app}/dynos/run.1`);
    expect(missing.status).toBe(404);
    for (const bad of ['run.1%00', `run.${'9'.repeat(5000)}`, 'run.1%2F..', 'web.1'])
      expect((await api(s, 'DELETE', `/apps/${app}/dynos/${bad}`)).status).toBe(422);
    expect((await api(s, 'GET', `/apps/${app}%2Fx/dynos`)).status).toBe(422);
    expect((await api(s, 'DELETE', `/apps/nope/dynos/${sleeper.name}`)).status).toBe(404);

    const stop = await cli(s, ['ps:stop', sleeper.name, '-a', app]);
    expect(stop.code, stop.stderr).toBe(0);
    const ended = await first;
    expect(ended.code).not.toBe(0); // stopped, not exited by itself
    expect((await oneOffs()).map((r) => r.name)).toEqual([other.name]);
    expect((await cli(s, ['ps:stop', other.name, '-a', app])).code).toBe(0);
    expect((await second).stdout).toContain('ready');
    expect(await oneOffs()).toEqual([]);
    expect((await cli(s, ['ps', '-a', app])).stdout).not.toContain('one-off');
  });

  it('the event stream tells of a config change as it happens', async () => {
    const ac = new AbortController();
    const res = await fetch(`${s.apiUrl}/events?app=${app}`, {
      headers: { authorization: `Bearer ${s.token}` },
      signal: ac.signal,
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const seen = (async () => {
      let text = '';
      for await (const chunk of res.body ?? []) {
        text += Buffer.from(chunk as Uint8Array).toString();
        if (text.includes('event: config.changed')) return text;
      }
      return text;
    })();
    const set = await cli(s, ['config:set', 'FEATURE=on', '-a', app]);
    expect(set.code, set.stderr).toBe(0);
    const text = await seen;
    ac.abort();
    expect(text).toMatch(/event: config\.changed\ndata: \{[^\n]*"set":\["FEATURE"\]/);
  });

  it('a custom domain is routed to the app, and removed', async () => {
    expect((await cli(s, ['domains:add', 'www.e2e.test', '-a', app])).code).toBe(0);
    const domains = JSON.parse((await cli(s, ['domains', '--json', '-a', app])).stdout) as {
      hostname: string;
    }[];
    expect(domains.map((d) => d.hostname)).toContain('www.e2e.test');
    await waitFor('the router to route www.e2e.test', async () =>
      (await byHost('www.e2e.test')).status === 200 ? true : undefined,
    );
    expect((await byHost('www.e2e.test')).body).toContain('web web.1');
    expect((await cli(s, ['domains:remove', 'www.e2e.test', '-a', app])).code).toBe(0);
    await waitFor('the router to drop www.e2e.test', async () =>
      (await byHost('www.e2e.test')).status === 404 ? true : undefined,
    );
  });

  it('apps:destroy needs --confirm, then stops every dyno and forgets the app', async () => {
    const refused = await cli(s, ['apps:destroy', '-a', app]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`--confirm ${app}`);
    expect((await getApp(s, app)).status).toBe(200);
    const r = await cli(s, ['apps:destroy', '-a', app, '--confirm', app]);
    expect(r.code, r.stderr).toBe(0);
    expect((await api(s, 'GET', `/apps/${app}`)).status).toBe(404);
    await waitFor('the router to stop routing the app', async () =>
      (await getApp(s, app)).status === 404 ? true : undefined,
    );
    const git = await run(
      'git',
      ['ls-remote', `${s.apiUrl.replace('://', `://flotilla:${s.token}@`)}/git/${app}.git`],
      { env: s.env },
    );
    expect(git.code).not.toBe(0);
    // Nothing of it is left on disk: its repository, its slug (no other app has one), its build
    // cache and build trees.
    const left = async (...path: string[]): Promise<string[]> =>
      readdir(join(s.dataDir, ...path)).catch(() => []);
    expect(await left('git')).not.toContain(`${app}.git`);
    expect((await left('artifacts')).filter((n) => n.endsWith('.tgz'))).toEqual([]);
    expect(await left('builds', 'cache')).not.toContain(app);
    expect(await left('builds', 'builds')).not.toContain(app);
  });

  it('builds from an uploaded tarball (the static sample), with its output, and serves it', async () => {
    const tarApp = 'e2e-tarball';
    expect((await api(s, 'POST', '/apps', { name: tarApp })).status).toBe(201);
    const tgz = await run('tar', ['-czf', '-', '-C', join(APPS, 'static'), '.'], {
      encoding: 'buffer',
    });
    const res = await fetch(`${s.apiUrl}/apps/${tarApp}/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/gzip' },
      body: tgz.stdoutBuffer,
    });
    expect(res.status).toBe(201);
    const build = (await res.json()) as { id: string; sourceType: string };
    expect(build.sourceType).toBe('tarball');
    const output = await cli(s, ['builds:output', build.id, '-a', tarApp]);
    expect(output.stdout).toContain('-----> succeeded');
    const page = await waitFor('the static site through the router', async () => {
      const r = await getApp(s, tarApp);
      return r.status === 200 ? r.body : undefined;
    });
    expect(page).toContain('A static site on Flotilla');
    const builds = JSON.parse((await cli(s, ['builds', '--json', '-a', tarApp])).stdout) as {
      id: string;
      status: string;
    }[];
    expect(builds).toEqual([expect.objectContaining({ id: build.id, status: 'succeeded' })]);
  });
});
