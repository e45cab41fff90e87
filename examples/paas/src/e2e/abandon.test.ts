// A push given up mid-build (ctrl-c: the git client is killed) cancels its build: nothing is
// released, main does not move, and no build process is left behind.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  cli,
  commitAll,
  git,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let s: TestServer;
const app = 'e2e-abandon';

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
}, 60_000);

afterAll(async () => {
  await s?.stop();
  // What the builds below left running (see the first test): their sleeps, by their lengths.
  for (const sleep of ['sleep 61', 'sleep 62', 'killed-build-started && sleep 62']) {
    const pids = await run('pgrep', ['-f', sleep]);
    for (const pid of pids.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  }
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

describe('a push given up', { timeout: 180_000 }, () => {
  it('cancels its build, releases nothing and leaves main where it was', async () => {
    const repo = await sampleRepo(s, 'node');
    expect((await cli(s, ['create', app], repo)).code).toBe(0);
    // A build step that would take a minute, and says when it starts.
    await writeFile(
      join(repo, 'package.json'),
      JSON.stringify({
        name: 'slow',
        version: '1.0.0',
        scripts: { build: 'echo slow-build-started && sleep 61' },
      }),
    );
    await commitAll(s, repo, 'slow');
    const push = spawn('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let out = '';
    const started = new Promise<void>((resolve) =>
      push.stderr.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('slow-build-started')) resolve();
      }),
    );
    const exited = new Promise((r) => push.once('exit', r));
    try {
      await started;
      process.kill(-(push.pid ?? 0), 'SIGINT'); // ctrl-c: the whole foreground group
      await exited;
    } finally {
      if (push.exitCode === null) process.kill(-(push.pid ?? 0), 'SIGKILL');
    }
    const builds = await waitFor(
      'the build to end',
      async () => {
        const b = (await api<{ status: string; error?: string }[]>(s, 'GET', `/apps/${app}/builds`))
          .body;
        return b[0]?.status === 'failed' ? b : undefined;
      },
      20_000,
    );
    expect(builds[0]?.error).toContain('the client went away');
    expect((await api<unknown[]>(s, 'GET', `/apps/${app}/releases`)).body).toEqual([]);
    expect((await git(s, repo, 'ls-remote', 'flotilla')).stdout.trim()).toBe('');
    // The build step (its shell) is gone. Its `sleep` outlives it: npm runs scripts in a
    // process group of their own, out of reach of the executor's group kill (buildpack's to fix).
    const step = await run('pgrep', ['-f', 'slow-build-started && sleep 61']);
    expect(step.stdout.trim()).toBe('');
  });
});

describe('a server killed mid-push', { timeout: 180_000 }, () => {
  it('refuses the push; restarted, it marks the build failed and takes the next push', async () => {
    const app2 = 'e2e-killed';
    const repo = await sampleRepo(s, 'node');
    expect((await cli(s, ['create', app2], repo)).code).toBe(0);
    const good = (await git(s, repo, 'rev-parse', 'HEAD')).stdout.trim();
    await writeFile(
      join(repo, 'package.json'),
      JSON.stringify({
        name: 'slow',
        version: '1.0.0',
        scripts: { build: 'echo killed-build-started && sleep 62' },
      }),
    );
    await commitAll(s, repo, 'slow');
    const push = spawn('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let out = '';
    const started = new Promise<void>((resolve) =>
      push.stderr.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('killed-build-started')) resolve();
      }),
    );
    const exited = new Promise<number | null>((r) => push.once('exit', r));
    await started;
    const killed = s;
    killed.process.kill('SIGKILL');
    expect(await exited).not.toBe(0);
    // git words the cut connection as it sees it: "the remote end hung up" or, when it was
    // reading the sideband, "unexpected disconnect".
    expect(out).toMatch(/the remote end hung up|unexpected disconnect/);
    // The build's own processes outlive a SIGKILLed server (nothing is left to kill them)...
    const orphans = async (): Promise<number[]> =>
      (await run('pgrep', ['-f', 'killed-build-started && sleep 62'])).stdout
        .split('\n')
        .filter(Boolean)
        .map(Number);
    expect((await orphans()).length).toBeGreaterThan(0);

    await killed.stop(); // already dead: frees what the harness holds for it
    s = await startServer({ dataDir: killed.dataDir, args: ['--stop-jobs'] });
    // ...until the server starts again: it ends them before it builds anything.
    try {
      await waitFor(
        "the dead server's build steps to be gone",
        async () => ((await orphans()).length === 0 ? true : undefined),
        20_000,
      );
    } finally {
      for (const pid of await orphans()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    const build = await waitFor(
      "the dead server's build to be marked failed",
      async () => {
        const b = (await api<{ status: string }[]>(s, 'GET', `/apps/${app2}/builds`)).body;
        return b[0]?.status === 'failed' ? b[0] : undefined;
      },
      30_000,
    );
    expect(build.status).toBe('failed');
    expect((await api<unknown[]>(s, 'GET', `/apps/${app2}/releases`)).body).toEqual([]);
    await git(s, repo, 'reset', '-q', '--hard', good);
    await git(s, repo, 'remote', 'set-url', 'flotilla', `${s.apiUrl}/git/${app2}.git`);
    expect((await cli(s, ['git:remote', '-a', app2], repo)).code).toBe(0);
    const again = await run('git', ['push', 'flotilla', 'main'], {
      cwd: repo,
      env: s.env,
      timeoutMs: 180_000,
    });
    expect(again.code, again.stderr).toBe(0);
  }, 120_000);
});
