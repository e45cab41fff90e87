// chownTree gives a slug dir to the container user: a process of that user writing in the tree
// (another job on the same slug dir) must not be able to turn it onto files outside.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chownTree } from './chown-tree.js';

const UID = 4242;
let base: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'flotilla-chown-tree-'));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function owners(dir: string): Promise<number[]> {
  const names = await readdir(dir);
  return Promise.all(names.map(async (n) => (await lstat(join(dir, n))).uid));
}

describe.skipIf(process.getuid?.() !== 0)('chownTree (as root)', () => {
  it('gives the tree and its links to the user, never what a link points to', async () => {
    const tree = join(base, 'tree');
    const outside = join(base, 'outside');
    await mkdir(join(tree, 'a', 'b'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(tree, 'a', 'b', 'f'), 'x');
    await writeFile(join(outside, 'secret'), 'x');
    await symlink(outside, join(tree, 'a', 'out'));
    await symlink('/', join(tree, 'root'));
    await chownTree(tree, UID, UID);
    expect((await lstat(join(tree, 'a', 'b', 'f'))).uid).toBe(UID);
    expect((await lstat(join(tree, 'a', 'out'))).uid).toBe(UID);
    expect((await lstat(join(tree, 'root'))).uid).toBe(UID);
    expect(await owners(outside)).toEqual([0]);
    expect((await lstat('/')).uid).toBe(0);
  });

  it(
    'a directory swapped for a symlink while the tree is walked is not followed',
    { timeout: 60_000 },
    async () => {
      const tree = join(base, 'tree');
      const victim = join(base, 'victim');
      await mkdir(join(tree, 'sub'), { recursive: true });
      await mkdir(victim);
      for (let i = 0; i < 50; i++) {
        await writeFile(join(tree, 'sub', `f${i}`), 'x');
        await writeFile(join(victim, `v${i}`), 'x');
      }
      // another process swaps tree/sub for a link to the victim and back, over and over
      const racer = spawn(
        process.execPath,
        [
          '-e',
          `const fs = require('node:fs');
        const [tree, victim] = process.argv.slice(1);
        const pause = new Int32Array(new SharedArrayBuffer(4));
        process.chdir(tree);
        for (;;) {
          fs.renameSync('sub', '.sub');
          fs.symlinkSync(victim, 'sub');
          Atomics.wait(pause, 0, 0, 1);
          fs.unlinkSync('sub');
          fs.renameSync('.sub', 'sub');
          Atomics.wait(pause, 0, 0, 1);
        }`,
          tree,
          victim,
        ],
        { stdio: 'ignore' },
      );
      try {
        for (let i = 0; i < 600; i++) {
          // the race may make one walk fail (an entry gone): never give away the victim
          await chownTree(tree, UID, UID).catch(() => undefined);
          await chownTree(tree, 0, 0).catch(() => undefined);
          if (i % 100 === 0 && (await owners(victim)).some((uid) => uid !== 0)) break;
        }
      } finally {
        racer.kill('SIGKILL');
        await once(racer, 'exit');
      }
      expect(new Set(await owners(victim))).toEqual(new Set([0]));
      expect((await lstat(victim)).uid).toBe(0);
    },
  );
});
