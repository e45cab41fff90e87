import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  watch,
  writeFileSync,
} from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SlugError, extractSlug, packSlug } from './index.js';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-slug-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Builds the app tree every round trip uses. */
async function makeApp(root: string): Promise<void> {
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'lib/deep/er'), { recursive: true });
  await mkdir(join(root, 'empty-dir'));
  await writeFile(join(root, 'Procfile'), 'web: bin/web\n');
  await writeFile(join(root, 'bin/web'), '#!/bin/sh\necho hello from the slug\n', { mode: 0o755 });
  await chmod(join(root, 'bin/web'), 0o755);
  await writeFile(join(root, 'lib/deep/er/data.txt'), 'x'.repeat(100_000));
  await writeFile(join(root, 'lib/empty'), '');
  await writeFile(join(root, 'lib/ünïcødé-名前.txt'), 'unicode\n');
  const long = join(root, 'l'.repeat(200), 'o'.repeat(200));
  await mkdir(long, { recursive: true });
  await writeFile(join(long, 'n'.repeat(200)), 'a path longer than ustar holds\n');
  await symlink('deep/er/data.txt', join(root, 'lib/data-link'));
  await symlink('../bin', join(root, 'lib/bin-link'));
}

/** Every path under `root` with what it is: a listing two trees can be compared by. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of (await readdir(root, { recursive: true })).sort()) {
    const abs = join(root, path);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) out[path] = `link -> ${await readlink(abs)}`;
    else if (st.isDirectory()) out[path] = 'dir';
    else {
      const digest = createHash('sha256')
        .update(await readFile(abs))
        .digest('hex');
      out[path] = `file ${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${st.size} ${digest.slice(0, 12)}`;
    }
  }
  return out;
}

describe('packSlug and extractSlug', () => {
  it('round-trip a tree: nested dirs, an executable, internal symlinks, an empty file, unicode names', async () => {
    const app = join(work, 'app');
    await makeApp(app);
    const packed = await packSlug(app, join(work, 'app.tgz'));
    expect(packed.path).toBe(join(work, 'app.tgz'));
    expect(packed.size).toBe((await stat(packed.path)).size);
    expect(packed.sha256).toBe(
      createHash('sha256')
        .update(await readFile(packed.path))
        .digest('hex'),
    );

    const out = join(work, 'out', 'web.1');
    const extracted = await extractSlug(packed.path, out, { expectedSha256: packed.sha256 });
    expect(await describeTree(out)).toEqual(await describeTree(app));
    expect(extracted.files).toBe(packed.files);
    expect(extracted.bytes).toBe(100_000 + 8 + 13 + 35 + 31);

    // The script is runnable where it landed, through the symlinked directory too.
    expect(execFileSync(join(out, 'lib/bin-link/web'), { encoding: 'utf8' })).toBe(
      'hello from the slug\n',
    );
    // Nothing but the target was left beside it.
    expect(await readdir(join(work, 'out'))).toEqual(['web.1']);
  });

  it('gives the same bytes and sha256 for the same tree, whatever its mtimes', async () => {
    const a = join(work, 'a');
    const b = join(work, 'b');
    await makeApp(a);
    await makeApp(b);
    const later = new Date('2030-01-01T00:00:00Z');
    execFileSync('touch', ['-h', '-d', later.toISOString(), join(b, 'bin/web'), join(b, 'lib')]);
    const first = await packSlug(a, join(work, 'a.tgz'));
    const second = await packSlug(b, join(work, 'b.tgz'));
    expect(second.sha256).toBe(first.sha256);
    expect(await readFile(second.path)).toEqual(await readFile(first.path));
  });

  it('leaves out excluded paths and a dest inside the tree', async () => {
    const app = join(work, 'app');
    await makeApp(app);
    await mkdir(join(app, '.git/objects'), { recursive: true });
    await writeFile(join(app, '.git/HEAD'), 'ref: main\n');
    await writeFile(join(app, 'app.tgz'), 'a previous slug');
    const packed = await packSlug(app, join(app, 'app.tgz'), { exclude: ['.git'] });
    const withPredicate = await packSlug(app, join(work, 'p.tgz'), {
      exclude: (path) => path === '.git' || path === 'app.tgz',
    });
    expect(withPredicate.sha256).toBe(packed.sha256);
    const out = join(work, 'out');
    await extractSlug(packed.path, out);
    expect(Object.keys(await describeTree(out))).not.toContain('.git');
    expect(Object.keys(await describeTree(out))).not.toContain('app.tgz');
    expect(Object.keys(await describeTree(out))).toContain('bin/web');
  });

  it('extracts into an existing empty directory, and refuses a non-empty one or a file', async () => {
    const app = join(work, 'app');
    await makeApp(app);
    const { path } = await packSlug(app, join(work, 'app.tgz'));
    const empty = join(work, 'empty');
    await mkdir(empty);
    await extractSlug(path, empty);
    expect(await readFile(join(empty, 'Procfile'), 'utf8')).toBe('web: bin/web\n');

    await expect(extractSlug(path, empty)).rejects.toMatchObject({
      code: 'FLOTILLA_SLUG_NOT_EMPTY',
    });
    await expect(extractSlug(path, join(work, 'app.tgz'))).rejects.toMatchObject({
      code: 'FLOTILLA_SLUG_NOT_EMPTY',
    });
    expect(await readdir(work)).toEqual(['app', 'app.tgz', 'empty']);
  });

  it('two extractions racing for one target: one wins whole, the other is refused and cleans up', async () => {
    const app = join(work, 'app');
    await makeApp(app);
    const { path } = await packSlug(app, join(work, 'app.tgz'));
    const out = join(work, 'out', 'web.1');
    const results = await Promise.allSettled([extractSlug(path, out), extractSlug(path, out)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused?.reason).toMatchObject({ code: 'FLOTILLA_SLUG_NOT_EMPTY' });
    expect(await describeTree(out)).toEqual(await describeTree(app));
    expect(await readdir(join(work, 'out'))).toEqual(['web.1']);
  });

  it('never gives an extracted file setuid, setgid, sticky or write bits for others', async () => {
    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'suid'), '#!/bin/sh\n');
    await chmod(join(app, 'suid'), 0o6777);
    await writeFile(join(app, 'readonly'), 'r');
    await chmod(join(app, 'readonly'), 0o400);
    const { path } = await packSlug(app, join(work, 'app.tgz'));
    const out = join(work, 'out');
    await extractSlug(path, out);
    expect((await stat(join(out, 'suid'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(out, 'readonly'))).mode & 0o7777).toBe(0o600);
    expect((await stat(out)).mode & 0o7777).toBe(0o755);
  });
});

describe('packSlug refuses', () => {
  async function expectRefused(app: string, code: string): Promise<SlugError> {
    const err: unknown = await packSlug(app, join(work, 'app.tgz')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlugError);
    expect(err).toMatchObject({ code });
    expect((await readdir(work)).sort()).toEqual(['app', 'outside']);
    return err as SlugError;
  }

  beforeEach(async () => {
    await mkdir(join(work, 'app'));
    await writeFile(join(work, 'outside'), 'secret');
  });

  it('a symlink leading outside the tree, also through a chain', async () => {
    const app = join(work, 'app');
    await symlink('../outside', join(app, 'up'));
    const err = await expectRefused(app, 'FLOTILLA_SLUG_LINK');
    expect(err.entry).toBe('up');
    expect(err.message).toContain('"up"');

    await rm(join(app, 'up'));
    await symlink('.', join(app, 'self'));
    await symlink('self/self/..', join(app, 'sneaky'));
    expect((await expectRefused(app, 'FLOTILLA_SLUG_LINK')).entry).toBe('sneaky');
  });

  it('an absolute symlink, even to a place inside the tree', async () => {
    const app = join(work, 'app');
    await writeFile(join(app, 'file'), 'x');
    await symlink(join(app, 'file'), join(app, 'abs'));
    await expectRefused(app, 'FLOTILLA_SLUG_LINK');
  });

  it('a FIFO and a socket', async () => {
    const app = join(work, 'app');
    execFileSync('mkfifo', [join(app, 'fifo')]);
    expect((await expectRefused(app, 'FLOTILLA_SLUG_SPECIAL')).entry).toBe('fifo');
    await rm(join(app, 'fifo'));

    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(app, 'sock'), resolve));
    try {
      expect((await expectRefused(app, 'FLOTILLA_SLUG_SPECIAL')).entry).toBe('sock');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a file that shrinks while it is packed', async () => {
    const app = join(work, 'app');
    await writeFile(join(app, 'a'), 'a'.repeat(1000));
    await writeFile(join(app, 'z'), 'z');
    // The walk has measured a when it asks about z; a shrinks before it is read.
    const exclude = (path: string): boolean => {
      if (path === 'z') truncateSync(join(app, 'a'), 10);
      return false;
    };
    const err: unknown = await packSlug(app, join(work, 'app.tgz'), { exclude }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'FLOTILLA_SLUG_CHANGED', entry: 'a' });
    expect((await readdir(work)).sort()).toEqual(['app', 'outside']);
  });

  it('a file that grows, is rewritten, is deleted or becomes a directory while it is packed', async () => {
    const app = join(work, 'app');
    const change: Record<string, () => void> = {
      grows: () => appendFileSync(join(app, 'a'), 'more'),
      rewritten: () => {
        writeFileSync(join(app, 'a'), 'b'.repeat(1000));
        utimesSync(join(app, 'a'), 1, 1);
      },
      deleted: () => rmSync(join(app, 'a')),
      'a directory': () => {
        rmSync(join(app, 'a'));
        mkdirSync(join(app, 'a'));
      },
      'a symlink out': () => {
        rmSync(join(app, 'a'));
        symlinkSync(join(work, 'outside'), join(app, 'a'));
      },
    };
    for (const [what, act] of Object.entries(change)) {
      await writeFile(join(app, 'a'), 'a'.repeat(1000));
      await writeFile(join(app, 'z'), 'z');
      // The walk has measured a when it asks about z; a changes before it is read.
      const exclude = (path: string): boolean => {
        if (path === 'z') act();
        return false;
      };
      const err: unknown = await packSlug(app, join(work, 'app.tgz'), { exclude }).catch(
        (e: unknown) => e,
      );
      expect([what, err]).toMatchObject([what, { code: 'FLOTILLA_SLUG_CHANGED', entry: 'a' }]);
      expect((await readdir(work)).sort()).toEqual(['app', 'outside']);
      await rm(app, { recursive: true });
      await mkdir(app);
    }
  });

  it('a dir that is not a directory, and bad arguments', async () => {
    await expect(packSlug(join(work, 'outside'), join(work, 'x.tgz'))).rejects.toMatchObject({
      code: 'FLOTILLA_SLUG_NOT_DIRECTORY',
    });
    await expect(packSlug(join(work, 'nope'), join(work, 'x.tgz'))).rejects.toMatchObject({
      code: 'FLOTILLA_SLUG_NOT_DIRECTORY',
    });
    await expect(packSlug('', join(work, 'x.tgz'))).rejects.toMatchObject({
      code: 'FLOTILLA_SLUG_INVALID_ARGUMENT',
    });
    // A dest in a directory that does not exist (or is a file): a coded error naming it.
    await mkdir(join(work, 'app'), { recursive: true });
    for (const parent of [join(work, 'missing'), join(work, 'outside')])
      await expect(packSlug(join(work, 'app'), join(parent, 'x.tgz'))).rejects.toMatchObject({
        code: 'FLOTILLA_SLUG_DEST_NOT_DIRECTORY',
        path: parent,
      });
    // A dest that is a directory (the app's own, say): refused before the walk, not a bare
    // EISDIR from the rename after it; the directory is left as it was.
    for (const dest of [join(work, 'app'), `${join(work, 'app')}/`])
      await expect(packSlug(join(work, 'app'), dest)).rejects.toMatchObject({
        code: 'FLOTILLA_SLUG_INVALID_ARGUMENT',
        path: join(work, 'app'),
      });
    expect(await readdir(join(work, 'app'))).toEqual([]);
    expect((await readdir(work)).sort()).toEqual(['app', 'outside']);
  });
});

describe('abort', () => {
  it('mid-pack leaves nothing at dest and keeps what was there', async () => {
    const app = join(work, 'app');
    await mkdir(app);
    // Incompressible data, so that gzip takes a while.
    for (let i = 0; i < 8; i++) {
      await writeFile(
        join(app, `blob-${i}`),
        createHash('sha512').update(String(i)).digest().toString('hex').repeat(40_000),
      );
    }
    await writeFile(join(work, 'app.tgz'), 'the previous slug');
    const controller = new AbortController();
    let sawTemp = false;
    const watcher = watch(work, (_event, name) => {
      if (name?.startsWith('.app.tgz.') === true && !sawTemp) {
        sawTemp = true;
        controller.abort(new Error('stop packing'));
      }
    });
    try {
      await expect(
        packSlug(app, join(work, 'app.tgz'), { signal: controller.signal }),
      ).rejects.toThrow('stop packing');
    } finally {
      watcher.close();
    }
    expect(sawTemp).toBe(true);
    expect((await readdir(work)).sort()).toEqual(['app', 'app.tgz']);
    expect(await readFile(join(work, 'app.tgz'), 'utf8')).toBe('the previous slug');
  });

  it('before the call starts: rejects with the reason and touches nothing', async () => {
    const app = join(work, 'app');
    await makeApp(app);
    const reason = new Error('already aborted');
    await expect(
      packSlug(app, join(work, 'app.tgz'), { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    const { path } = await packSlug(app, join(work, 'app.tgz'));
    await expect(
      extractSlug(path, join(work, 'out'), { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    expect((await readdir(work)).sort()).toEqual(['app', 'app.tgz']);
  });
});
