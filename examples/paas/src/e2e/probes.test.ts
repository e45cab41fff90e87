// A hostile user against a real server: garbage names and values, traversal in git paths,
// huge bodies, a CLI without a server. Each is refused with a clear error and changes nothing.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  cli,
  git,
  MAIN,
  removeDir,
  run,
  sampleRepo,
  startServer,
  type TestServer,
} from './harness.js';

let s: TestServer;
const app = 'e2e-probes';

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
  expect((await api(s, 'POST', '/apps', { name: app })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

const appNames = async (): Promise<string[]> =>
  (await api<{ name: string }[]>(s, 'GET', '/apps')).body.map((a) => a.name);

describe(
  'the API refuses bad input with a JSON error and writes nothing',
  { timeout: 180_000 },
  () => {
    it.each([
      ['a/b', 422],
      ['with\0nul', 422],
      ['x'.repeat(300), 422],
      ['UPPER', 422],
      ['-dash', 422],
      ['dash-', 422],
      ['', 422],
    ])('app name %j', async (name, status) => {
      const before = await appNames();
      const r = await api<{ id: string; message: string }>(s, 'POST', '/apps', { name });
      expect(r.status).toBe(status);
      expect(r.body.message).toMatch(/DNS label/);
      expect(await appNames()).toEqual(before);
    });

    it('paths with an encoded slash, NUL or garbage', async () => {
      for (const path of ['/apps/a%2Fb', '/apps/a%00b', '/apps/%E0%A4%A', '/apps/%2E%2E']) {
        const r = await api<{ id: string }>(s, 'GET', path);
        expect([404, 422]).toContain(r.status);
        expect(typeof r.body.id).toBe('string');
      }
    });

    it('a second app with a taken name is a conflict', async () => {
      const r = await api<{ id: string }>(s, 'POST', '/apps', { name: app });
      expect(r.status).toBe(409);
    });

    it('config vars: bad names, NUL in values, an empty patch; no release is made', async () => {
      const releases = async (): Promise<number> =>
        (await api<unknown[]>(s, 'GET', `/apps/${app}/releases`)).body.length;
      const before = await releases();
      for (const body of [
        { '1BAD': 'x' },
        { 'A-B': 'x' },
        { OK: 'nul\0here' },
        {},
        { OK: 5 },
        ['A=b'],
      ]) {
        const r = await api<{ id: string }>(s, 'PATCH', `/apps/${app}/config-vars`, body);
        expect(r.status, JSON.stringify(body)).toBe(422);
      }
      expect(await releases()).toBe(before);
    });

    it('formation: negative, fractional and non-numeric quantities', async () => {
      for (const quantity of [-1, 1.5, 'three', null, 1e9]) {
        const r = await api(s, 'PATCH', `/apps/${app}/formation`, {
          updates: [{ type: 'web', quantity }],
        });
        expect(r.status, String(quantity)).toBe(422);
      }
    });

    it('a body over 1 MiB is 413', async () => {
      const r = await api(s, 'POST', '/apps', {
        name: 'big',
        meta: { x: 'y'.repeat(2 * 1024 * 1024) },
      });
      expect(r.status).toBe(413);
      expect(await appNames()).not.toContain('big');
    });

    it('an unknown app is 404 on every resource', async () => {
      for (const path of [
        '/apps/ghost',
        '/apps/ghost/config-vars',
        '/apps/ghost/releases',
        '/apps/ghost/dynos',
      ]) {
        expect((await api(s, 'GET', path)).status, path).toBe(404);
      }
    });
  },
);

describe('source uploads', { timeout: 180_000 }, () => {
  it('garbage instead of a gzipped tarball fails its build with a reason, and releases nothing', async () => {
    const res = await fetch(`${s.apiUrl}/apps/${app}/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/gzip' },
      body: Buffer.from('this is not a tarball\0\xff'),
    });
    if (res.status === 201) {
      const { id } = (await res.json()) as { id: string };
      const out = await cli(s, ['builds:output', id, '-a', app]);
      expect(out.stdout).toMatch(/-----> failed: .+/);
    } else {
      expect(res.status).toBe(422);
    }
    expect((await api<unknown[]>(s, 'GET', `/apps/${app}/releases`)).body).toEqual([]);
  });

  it('an upload to an app that does not exist is 404 and leaves no file', async () => {
    const res = await fetch(`${s.apiUrl}/apps/ghost/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/gzip' },
      body: Buffer.alloc(1024 * 1024),
    });
    expect(res.status).toBe(404);
    expect(await readdir(join(s.dataDir, 'uploads')).catch(() => [])).toEqual([]);
  });
});

describe('git over smart HTTP', { timeout: 180_000 }, () => {
  const basic = (): string => 'Basic ' + Buffer.from(`flotilla:${s.token}`).toString('base64');

  it('serves only /git/<app>.git smart HTTP paths of apps that exist', async () => {
    for (const path of [
      '/git/ghost.git/info/refs?service=git-receive-pack',
      '/git/..%2F..%2Fetc.git/info/refs',
      '/git/../token',
      `/git/${app}.git/HEAD`,
      `/git/${app}.git/objects/info/packs`,
      `/git/${app}.git/hooks/pre-receive`,
    ]) {
      const r = await fetch(s.apiUrl + path, { headers: { authorization: basic() } });
      expect(r.status, path).toBe(404);
    }
    const ok = await fetch(`${s.apiUrl}/git/${app}.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: basic() },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/x-git-upload-pack-advertisement');
  });

  it('a push to an app that does not exist fails and creates nothing', async () => {
    const repo = await sampleRepo(s, 'static');
    const url = `${s.apiUrl.replace('://', `://flotilla:${s.token}@`)}/git/ghost.git`;
    const r = await run('git', ['push', url, 'main'], { cwd: repo, env: s.env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/404|not found/i);
    expect(await appNames()).not.toContain('ghost');
  });

  it('a push to a branch other than main or master is stored, not deployed', async () => {
    const builds = async (): Promise<number> =>
      (await api<unknown[]>(s, 'GET', `/apps/${app}/builds`)).body.length;
    const before = await builds();
    const repo = await sampleRepo(s, 'static');
    const url = `${s.apiUrl.replace('://', `://flotilla:${s.token}@`)}/git/${app}.git`;
    await git(s, repo, 'checkout', '-q', '-b', 'feature');
    const r = await run('git', ['push', url, 'feature'], { cwd: repo, env: s.env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('refs/heads/feature is stored, not deployed');
    expect(await builds()).toBe(before);
  });
});

describe('the CLI', { timeout: 180_000 }, () => {
  it('says what is wrong with bad arguments, and exits 1', async () => {
    const scale = await cli(s, ['ps:scale', 'web=lots', '-a', app]);
    expect(scale.code).toBe(1);
    expect(scale.stderr).toContain('web=lots is not type=N');
    const set = await cli(s, ['config:set', 'NOEQUALS', '-a', app]);
    expect(set.code).toBe(1);
    expect(set.stderr).toContain('NOEQUALS is not KEY=value');
    const server = await cli(s, ['config:set', '1BAD=x', '-a', app]);
    expect(server.code).toBe(1);
    expect(server.stderr).toContain('config var name');
  });

  it('asks for -a outside a repository with a flotilla remote', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-nogit-'));
    try {
      const r = await cli(s, ['ps'], dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('pass -a <app>');
    } finally {
      await removeDir(dir);
    }
  });

  it('says when it cannot reach the server', async () => {
    const r = await run(process.execPath, [MAIN, 'apps'], {
      env: { ...s.env, FLOTILLA_URL: 'http://127.0.0.1:1' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach the Flotilla API at http://127.0.0.1:1');
  });

  it('login checks the token before saving it, and then needs no variables', async () => {
    const env = { ...s.env, FLOTILLA_URL: '', FLOTILLA_TOKEN: '' };
    const bad = await run(
      process.execPath,
      [MAIN, 'login', '--url', s.apiUrl, '--token', 'wrong-token-123456789'],
      { env },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('missing or wrong token');
    const good = await run(
      process.execPath,
      [MAIN, 'login', '--url', s.apiUrl, '--token-file', join(s.dataDir, 'token')],
      { env },
    );
    expect(good.code, good.stderr).toBe(0);
    const apps = await run(process.execPath, [MAIN, 'apps', '--json'], { env });
    expect(JSON.parse(apps.stdout)).toContainEqual(expect.objectContaining({ name: app }));
  });
});

describe('two servers racing for one machine', { timeout: 180_000 }, () => {
  it('a second server on the same data directory is refused, naming the first', async () => {
    const r = await run(
      process.execPath,
      [MAIN, 'server', '--data-dir', s.dataDir, '--api-port', '0', '--router-port', '0'],
      {
        env: { ...s.env, FLOTILLA_TOKEN: '' },
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is open in another process (pid ${s.process.pid})`);
    expect((await api(s, 'GET', '/apps')).status).toBe(200); // the first one is unharmed
  });

  it('a port in use is said, with the flag to change it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-port-'));
    try {
      const port = new URL(s.apiUrl).port;
      const r = await run(
        process.execPath,
        [MAIN, 'server', '--data-dir', dir, '--api-port', port, '--router-port', '0'],
        {
          env: { ...s.env, FLOTILLA_TOKEN: '' },
        },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`127.0.0.1:${port} is in use`);
      expect(r.stderr).toContain('--api-port');
    } finally {
      await removeDir(dir);
    }
  });
});
