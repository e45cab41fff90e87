// The apps' bare repositories: a push over the size limit is refused before it lands (git's
// receive.maxInputSize), also in a repository made before the limit existed.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { GitRepos } from './repos.js';

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const env = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.test',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.test',
  GIT_CONFIG_NOSYSTEM: '1',
};

async function git(cwd: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('git', args, { cwd, env, maxBuffer: 16 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout}${e.stderr}` };
  }
}

async function commitRandom(work: string, name: string, bytes: number): Promise<void> {
  await writeFile(join(work, name), randomBytes(bytes));
  await git(work, 'add', name);
  expect((await git(work, 'commit', '-q', '-m', name)).code).toBe(0);
}

describe('GitRepos', () => {
  it('refuses a push over maxPushBytes, and main stays where it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-repos-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A hook that takes every push: the limit is git's, before any hook runs.
    const hook = join(dir, 'hook.mjs');
    await writeFile(hook, 'process.exit(0);\n');
    const root = join(dir, 'git');
    const bare = await new GitRepos(root, hook, 256 * 1024).ensure('demo');
    const work = join(dir, 'work');
    await run('git', ['init', '-q', '-b', 'main', work], { env });
    await commitRandom(work, 'small', 16 * 1024);
    expect((await git(work, 'push', '-q', bare, 'main')).code).toBe(0);
    const first = (await git(bare, 'rev-parse', 'main')).out.trim();

    await commitRandom(work, 'big', 1024 * 1024);
    const refused = await git(work, 'push', bare, 'main');
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/maximum allowed size/);
    expect((await git(bare, 'rev-parse', 'main')).out.trim()).toBe(first);

    // The limit is set again on every use: raised, the same push goes through.
    await new GitRepos(root, hook, 4 * 1024 * 1024).ensure('demo');
    expect((await git(work, 'push', '-q', bare, 'main')).code).toBe(0);
    expect((await git(bare, 'rev-parse', 'main')).out.trim()).not.toBe(first);
  });
});
