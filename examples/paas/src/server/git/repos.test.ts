// The apps' bare repositories: a push over the size limit is refused before it lands (git's
// receive.maxInputSize), also in a repository made before the limit existed.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
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
    const bare = await new GitRepos(root, hook, 256 * 1024).ensure('demo', '1');
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
    await new GitRepos(root, hook, 4 * 1024 * 1024).ensure('demo', '1');
    expect((await git(work, 'push', '-q', bare, 'main')).code).toBe(0);
    expect((await git(bare, 'rev-parse', 'main')).out.trim()).not.toBe(first);
  });

  describe('apps destroyed and created again', () => {
    /** A GitRepos in a fresh directory, and a work tree with one commit. */
    async function setup(): Promise<{ repos: GitRepos; root: string; work: string }> {
      const dir = await mkdtemp(join(tmpdir(), 'flotilla-repos-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const hook = join(dir, 'hook.mjs');
      await writeFile(hook, 'process.exit(0);\n');
      const work = join(dir, 'work');
      await run('git', ['init', '-q', '-b', 'main', work], { env });
      await commitRandom(work, 'one', 1024);
      return { repos: new GitRepos(join(dir, 'git'), hook), root: join(dir, 'git'), work };
    }

    const hasMain = async (bare: string): Promise<boolean> =>
      (await git(bare, 'rev-parse', '--verify', '-q', 'main')).code === 0;

    it("a new app of a destroyed app's name gets an empty repository, not the old history", async () => {
      const { repos, work } = await setup();
      const bare = await repos.ensure('demo', '1000');
      expect((await git(work, 'push', '-q', bare, 'main')).code).toBe(0);
      expect(await hasMain(bare)).toBe(true);
      // The same app again: its repository, as it was.
      expect(await repos.ensure('demo', '1000')).toBe(bare);
      expect(await hasMain(bare)).toBe(true);
      // demo destroyed (its repository left: a crash, another server) and created again.
      expect(await repos.ensure('demo', '2000')).toBe(bare);
      expect(await hasMain(bare)).toBe(false);
    });

    it('remove() deletes the repository of the app destroyed, never that of a new app of the name', async () => {
      const { repos, root } = await setup();
      const bare = await repos.ensure('demo', '1000');
      // Destroyed, then created again before the destroy's remove() came.
      await repos.ensure('demo', '2000');
      expect(await repos.remove('demo', '1000')).toBe(false);
      expect(await hasMain(bare).then(() => readdir(root))).toEqual(['demo.git']);
      expect(await repos.remove('demo', '2000')).toBe(true);
      expect(await readdir(root)).toEqual([]);
      expect(await repos.remove('demo', '2000')).toBe(false);
    });

    it('sweep() deletes the repositories of apps gone or created again and the leftovers of a crash; keeps what it cannot look up', async () => {
      const { repos, root } = await setup();
      for (const app of ['kept', 'gone', 'again', 'unknown']) await repos.ensure(app, '1000');
      // A repository made before repositories were marked: taken as its app's.
      const legacy = join(root, 'legacy.git');
      await run('git', ['init', '--bare', '--quiet', legacy]);
      const legacyGone = join(root, 'oldgone.git');
      await run('git', ['init', '--bare', '--quiet', legacyGone]);
      await mkdir(join(root, '.tmp-demo-123-abcd', 'objects'), { recursive: true });
      await mkdir(join(root, '.trash-demo-ffff', 'objects'), { recursive: true });
      const apps: Record<string, string> = { kept: '1000', again: '2000', legacy: '5' };
      const errors: string[] = [];
      const removed = await repos.sweep(
        async (app) => {
          if (app === 'unknown') throw new Error('the store is away');
          return apps[app];
        },
        (app, err) => errors.push(`${app}: ${(err as Error).message}`),
      );
      expect(removed.sort()).toEqual(['again', 'gone', 'oldgone']);
      expect(errors).toEqual(['unknown: the store is away']);
      expect((await readdir(root)).sort()).toEqual(['kept.git', 'legacy.git', 'unknown.git']);
    });

    it('ensure() and remove() of one app take turns: a remove racing a re-create leaves the new repository', async () => {
      const { repos, root } = await setup();
      await repos.ensure('demo', '1000');
      const [removed, bare] = await Promise.all([
        repos.remove('demo', '1000'),
        repos.ensure('demo', '2000'),
      ]);
      expect(removed).toBe(true);
      expect(await readdir(root)).toEqual(['demo.git']);
      expect((await git(bare, 'config', '--get', 'flotilla.incarnation')).out.trim()).toBe('2000');
      // The other order: the re-create first, then the late remove of the old app.
      const [bare2, removed2] = await Promise.all([
        repos.ensure('demo', '3000'),
        repos.remove('demo', '2000'),
      ]);
      expect(removed2).toBe(false);
      expect((await git(bare2, 'config', '--get', 'flotilla.incarnation')).out.trim()).toBe('3000');
    });
  });
});
