// Probe (session 9): one-offs stopped with ps:stop, and an app destroyed and created again,
// against a real `flotilla server` (ProcessDriver, SQLite in a temp dir) and the real CLI.
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  getApp,
  MAIN,
  ps,
  removeDir,
  run,
  sampleRepo,
  startServer,
  waitFor,
  type TestServer,
} from './harness.js';

let s: TestServer;
/** A server SIGKILLed by the restart test, stopped (its jobs killed) at the end. */
let killed: TestServer | undefined;
let repo: string;
const app = 'e2e-probe-s9';

async function push(): Promise<void> {
  const r = await run('git', ['push', '-f', 'flotilla', 'main'], {
    cwd: repo,
    env: s.env,
    timeoutMs: 180_000,
  });
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
  repo = await sampleRepo(s, 'node');
  expect((await cli(s, ['create', app], repo)).code).toBe(0);
  await push();
}, 240_000);

afterAll(async () => {
  await s?.stop();
  await killed?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

describe('probe s9', { timeout: 120_000 }, () => {
  it("a run stopped with ps:stop exits as a shell's command killed by SIGTERM does (143)", async () => {
    const child = spawn(process.execPath, [MAIN, 'run', '-a', app, 'echo started; sleep 96'], {
      env: s.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await new Promise<void>((resolve) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('started')) resolve();
        });
      });
      const oneOff = (await ps(s, app)).find((d) => d.type === 'run');
      expect(oneOff).toBeDefined();
      const stop = await cli(s, ['ps:stop', '-a', app, oneOff?.name ?? '']);
      expect(stop.code, stop.stderr).toBe(0);
      // It was 1, as for a command that failed: a script could not tell it was stopped.
      expect(await exited, stderr).toBe(143);
      expect(stderr).toMatch(/stopped with SIGTERM/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('ps:stop of a garbage id says so in a short line: a 10 KB id or terminal escapes are not echoed', async () => {
    for (const bad of [`run.${'9'.repeat(10_000)}`, 'x'.repeat(10_000), 'run.1\x1b[2J\u202e']) {
      const r = await cli(s, ['ps:stop', '-a', app, bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('is not a one-off dyno');
      // It echoed the whole id (10 KB on one line), escapes and all.
      expect(r.stderr.length, r.stderr.slice(0, 200)).toBeLessThan(400);
      expect(r.stderr).not.toContain('\x1b');
    }
  });

  it('an app destroyed and created again serves its new config, not the old release of that number', async () => {
    // v2 of the first app says "first life".
    const setOld = await cli(s, ['config:set', '-a', app, 'MESSAGE=first life']);
    expect(setOld.code, setOld.stderr).toBe(0);
    const destroyed = await cli(s, ['apps:destroy', '-a', app, '--confirm', app]);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect((await cli(s, ['create', app], repo)).code).toBe(0);
    await push();
    const setNew = await cli(s, ['config:set', '-a', app, 'MESSAGE=second life']);
    expect(setNew.code, setNew.stderr).toBe(0);
    // The router answers from the new v2 (its dyno says which release it is)...
    const body = await waitFor('v2 serving', async () => {
      const a = await getApp(s, app);
      const b = JSON.parse(a.body) as { message: string; release: string };
      return a.status === 200 && b.release === 'v2' ? b : undefined;
    });
    // ...with the new app's config: the host agent ran the first app's v2 (its config, its slug).
    expect(body.message).toBe('second life');
  });

  // Last: it replaces the server.
  it('a server SIGKILLed while a one-off runs, started again, leaves nothing of it: no process, no work dir', async () => {
    const child = spawn(process.execPath, [MAIN, 'run', '-a', app, 'echo started; sleep 95'], {
      env: s.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise<void>((resolve) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('started')) resolve();
        });
      });
      const oneOffDir = join(s.dataDir, 'one-off');
      expect(await readdir(oneOffDir)).toHaveLength(1);
      killed = s;
      s.process.kill('SIGKILL');
      await new Promise((r) => killed?.process.once('exit', r));
      s = await startServer({ dataDir: killed.dataDir, args: ['--stop-jobs'] });
      expect((await ps(s, app)).filter((d) => d.type === 'run')).toEqual([]);
      await waitFor('the one-off process gone', async () =>
        (await run('pgrep', ['-f', 'sleep 95'])).code === 1 ? true : undefined,
      );
      // Its slug, extracted for it, was left for ever (one per run cut short so).
      expect(await readdir(oneOffDir)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
