// Two pushes of one app racing: one deploys and moves main, the other is refused, and what
// serves is what main says (without the server's per-app push lock, both deployed and the
// later deploy served a commit main did not have).
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  commitAll,
  getApp,
  git,
  removeDir,
  run,
  sampleRepo,
  startServer,
  type TestServer,
} from './harness.js';

let s: TestServer;
const app = 'e2e-race';

beforeAll(async () => {
  s = await startServer({ args: ['--stop-jobs'] });
}, 60_000);

afterAll(async () => {
  await s?.stop();
  if (s !== undefined) await removeDir(s.dataDir);
}, 60_000);

describe('two pushes racing', { timeout: 180_000 }, () => {
  it('one deploys, the other is refused, and main is what serves', async () => {
    const a = await sampleRepo(s, 'node');
    expect((await cli(s, ['create', app], a)).code).toBe(0);
    const first = await run('git', ['push', 'flotilla', 'main'], {
      cwd: a,
      env: s.env,
      timeoutMs: 180_000,
    });
    expect(first.code, first.stderr).toBe(0);
    const b = await mkdtemp(join(s.dataDir, 'src-b-'));
    await cp(a, b, { recursive: true });
    await writeFile(join(a, 'Procfile'), 'web: MESSAGE=from-a node server.js\n');
    await commitAll(s, a, 'a');
    await writeFile(join(b, 'Procfile'), 'web: MESSAGE=from-b node server.js\n');
    await commitAll(s, b, 'b');
    const [pa, pb] = await Promise.all(
      [a, b].map((dir) =>
        run('git', ['push', 'flotilla', 'main'], { cwd: dir, env: s.env, timeoutMs: 240_000 }),
      ),
    );
    const codes = [pa?.code, pb?.code];
    expect(
      codes.filter((c) => c === 0),
      `${pa?.stderr}\n----\n${pb?.stderr}`,
    ).toHaveLength(1);
    const loser = pa?.code === 0 ? pb : pa;
    expect(loser?.stderr).toContain('was pushed meanwhile: pull');
    const winner = pa?.code === 0 ? a : b;
    const head = (await git(s, winner, 'rev-parse', 'HEAD')).stdout.trim();
    const remote = (await git(s, a, 'ls-remote', 'flotilla', 'refs/heads/main')).stdout.split(
      '\t',
    )[0];
    expect(remote).toBe(head);
    const served = JSON.parse((await getApp(s, app)).body) as { message: string };
    expect(served.message).toBe(winner === a ? 'from-a' : 'from-b');
  });
});
