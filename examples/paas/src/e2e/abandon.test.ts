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
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

describe('a push given up', () => {
  it('cancels its build, releases nothing and leaves main where it was', async () => {
    const repo = await sampleRepo(s, 'node');
    expect((await cli(s, ['create', app], repo)).code).toBe(0);
    // A build step that would take a minute, and says when it starts.
    await writeFile(
      join(repo, 'package.json'),
      JSON.stringify({
        name: 'slow',
        version: '1.0.0',
        scripts: { build: 'echo slow-build-started && sleep 60' },
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
    const sleeping = await run('pgrep', ['-f', 'slow-build-started && sleep 60']);
    expect(sleeping.stdout.trim()).toBe('');
  });
});
