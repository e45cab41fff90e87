import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SlugError, extractSlug, packSlug } from './index.js';
import type { ExtractSlugOptions } from './index.js';

type Header = Parameters<tar.Pack['entry']>[0];

/** An entry of a hand-made tar: a header, and the data of a file. */
interface Crafted {
  readonly header: Header;
  readonly body?: string | Buffer;
}

/** Writes a tar exactly as told, with no checks: what a hostile user would hand us. */
async function craftTar(entries: readonly Crafted[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body === undefined) pack.entry(header, done);
      else pack.entry(header, body, done);
    });
  }
  pack.finalize();
  await reading;
  return Buffer.concat(chunks);
}

const craft = async (entries: readonly Crafted[]): Promise<Buffer> =>
  gzipSync(await craftTar(entries));

/** A tar header for a file `name` declaring `size` bytes (base-256, as GNU tar writes > 8 GiB). */
async function headerDeclaring(name: string, size: number): Promise<Buffer> {
  const header = Buffer.from((await craftTar([{ header: { name }, body: 'x' }])).subarray(0, 512));
  header[124] = 0x80;
  header.fill(0, 125, 136);
  let rest = BigInt(size);
  for (let i = 135; i > 124; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

let work: string;
let out: string;
let target: string;
let outside: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-slug-'));
  out = join(work, 'out');
  target = join(out, 'app');
  outside = join(work, 'outside');
  await mkdir(out);
  await mkdir(outside);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Extracts `slug` into `target` and expects it refused with `code`, and nothing left behind:
 * no target, no temporary directory beside it, nothing written next to it or outside.
 */
async function expectRefused(
  slug: Buffer,
  code: string,
  options: ExtractSlugOptions = {},
): Promise<SlugError> {
  const src = join(work, 'slug.tgz');
  await writeFile(src, slug);
  const err: unknown = await extractSlug(src, target, options).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SlugError);
  expect(err).toMatchObject({ code });
  expect(await readdir(out)).toEqual([]);
  expect((await readdir(work)).sort()).toEqual(['out', 'outside', 'slug.tgz']);
  expect(await readdir(outside)).toEqual([]);
  return err as SlugError;
}

const file = (name: string, body: string | Buffer = 'x'): Crafted => ({
  header: { name, mode: 0o644 },
  body,
});
const dir = (name: string): Crafted => ({ header: { name, type: 'directory', mode: 0o755 } });
const symlink = (name: string, linkname: string): Crafted => ({
  header: { name, type: 'symlink', linkname },
});
const hardlink = (name: string, linkname: string): Crafted => ({
  header: { name, type: 'link', linkname },
});

describe('extractSlug refuses hostile slugs and leaves nothing behind', () => {
  it('an entry named ../evil', async () => {
    const err = await expectRefused(
      await craft([file('ok'), file('../evil')]),
      'FLOTILLA_SLUG_ESCAPE',
    );
    expect(err.entry).toBe('../evil');
    expect(err.message).toContain('"../evil"');
  });

  it('a long or unicode name carried in a pax header that climbs out', async () => {
    await expectRefused(
      await craft([file(`${'d'.repeat(120)}/../../evil`)]),
      'FLOTILLA_SLUG_ESCAPE',
    );
    await expectRefused(await craft([file('ü/../../evil')]), 'FLOTILLA_SLUG_ESCAPE');
  });

  it('an absolute entry /etc/x', async () => {
    const name = `/etc/flotilla-slug-test-${randomBytes(4).toString('hex')}`;
    await expectRefused(await craft([file(name)]), 'FLOTILLA_SLUG_ESCAPE');
    expect(existsSync(name)).toBe(false);
  });

  it('an entry a/../../x that climbs out through a directory', async () => {
    await expectRefused(await craft([dir('a/'), file('a/../../x')]), 'FLOTILLA_SLUG_ESCAPE');
  });

  it('a symlink to /etc followed by a file written through it', async () => {
    const name = `flotilla-slug-test-${randomBytes(4).toString('hex')}`;
    const err = await expectRefused(
      await craft([symlink('link', '/etc'), file(`link/${name}`, 'root::0:0::/:/bin/sh')]),
      'FLOTILLA_SLUG_LINK',
    );
    expect(err.entry).toBe('link');
    expect(existsSync(`/etc/${name}`)).toBe(false);
  });

  it('a file written through a symlink, even one that points inside', async () => {
    const err = await expectRefused(
      await craft([dir('sub/'), symlink('link', 'sub'), file('link/passwd')]),
      'FLOTILLA_SLUG_LINK',
    );
    expect(err.entry).toBe('link/passwd');
  });

  it('a symlink a -> .. and chains of links that climb out', async () => {
    await expectRefused(await craft([symlink('a', '..')]), 'FLOTILLA_SLUG_LINK');
    // d/a leads to the root, which is fine; d/b goes one further through it.
    const chained = await expectRefused(
      await craft([dir('d/'), symlink('d/a', '..'), symlink('d/b', 'a/..')]),
      'FLOTILLA_SLUG_LINK',
    );
    expect(chained.entry).toBe('d/b');
    // a -> . makes a/a/a the root: a lexical check would call a/a/a/.. inside.
    await expectRefused(
      await craft([symlink('a', '.'), symlink('b', 'a/a/a/..')]),
      'FLOTILLA_SLUG_LINK',
    );
    // The escape appears only once a later link exists: x -> y/.. is inside until y -> . lands.
    await expectRefused(
      await craft([symlink('x', 'y/..'), symlink('y', '.')]),
      'FLOTILLA_SLUG_LINK',
    );
    await expectRefused(await craft([symlink('p', 'q'), symlink('q', 'p')]), 'FLOTILLA_SLUG_LINK');
  });

  it('a hard link to /etc/passwd, or to ../x, or to nothing in the slug', async () => {
    await expectRefused(await craft([hardlink('h', '/etc/passwd')]), 'FLOTILLA_SLUG_LINK');
    await expectRefused(await craft([hardlink('h', '../outside/x')]), 'FLOTILLA_SLUG_LINK');
    await expectRefused(await craft([hardlink('h', 'later'), file('later')]), 'FLOTILLA_SLUG_LINK');
    await expectRefused(await craft([dir('d/'), hardlink('h', 'd')]), 'FLOTILLA_SLUG_LINK');
  });

  it('a character device, a block device and a FIFO', async () => {
    const dev = { mode: 0o666, devmajor: 1, devminor: 3 };
    for (const type of ['character-device', 'block-device', 'fifo'] as const) {
      const err = await expectRefused(
        await craft([file('ok'), { header: { name: 'dev/null', type, ...dev } }]),
        'FLOTILLA_SLUG_SPECIAL',
      );
      expect(err.entry).toBe('dev/null');
    }
  });

  it('a file declaring 10 GB, before writing any of it', async () => {
    const tarBytes = Buffer.concat([await headerDeclaring('big', 10e9), Buffer.alloc(1 << 20)]);
    const err = await expectRefused(gzipSync(tarBytes), 'FLOTILLA_SLUG_TOO_LARGE', {
      maxBytes: 1 << 30,
    });
    expect(err.entry).toBe('big');
    // The default limit (2 GiB) refuses it too.
    await expectRefused(gzipSync(tarBytes), 'FLOTILLA_SLUG_TOO_LARGE');
  });

  it('files adding up past maxBytes, and more entries than maxEntries', async () => {
    const slug = await craft([file('a', 'x'.repeat(600)), file('b', 'y'.repeat(600))]);
    await expectRefused(slug, 'FLOTILLA_SLUG_TOO_LARGE', { maxBytes: 1000 });
    await expectRefused(slug, 'FLOTILLA_SLUG_TOO_MANY_ENTRIES', { maxEntries: 1 });
  });

  it('a stream of empty tar blocks that inflates without end', async () => {
    await expectRefused(gzipSync(Buffer.alloc(80 << 20)), 'FLOTILLA_SLUG_TOO_LARGE', {
      maxBytes: 0,
    });
  });

  it('the same name twice, and a file used as a directory', async () => {
    await expectRefused(await craft([file('a'), file('a')]), 'FLOTILLA_SLUG_CONFLICT');
    await expectRefused(await craft([file('a'), file('a/b')]), 'FLOTILLA_SLUG_CONFLICT');
    await expectRefused(await craft([file('a'), symlink('a', 'b')]), 'FLOTILLA_SLUG_CONFLICT');
  });

  it('a truncated file, a truncated gzip, random garbage and an empty file', async () => {
    const tarBytes = await craftTar([file('a', 'z'.repeat(10_000))]);
    await expectRefused(gzipSync(tarBytes.subarray(0, 5000)), 'FLOTILLA_SLUG_CORRUPT');
    const whole = gzipSync(await craftTar([file('a', randomBytes(50_000))]));
    await expectRefused(whole.subarray(0, whole.length >> 1), 'FLOTILLA_SLUG_CORRUPT');
    await expectRefused(randomBytes(4096), 'FLOTILLA_SLUG_CORRUPT');
    await expectRefused(gzipSync(randomBytes(4096)), 'FLOTILLA_SLUG_CORRUPT');
    await expectRefused(Buffer.alloc(0), 'FLOTILLA_SLUG_CORRUPT');
  });

  it('a slug cut short at any of 50 points (still being written): corrupt, nothing left', async () => {
    const app = join(work, 'app');
    await mkdir(join(app, 'lib'), { recursive: true });
    await writeFile(join(app, 'Procfile'), 'web: bin/web\n');
    await writeFile(join(app, 'lib/data'), randomBytes(40_000));
    await writeFile(join(app, 'lib/text'), 'y'.repeat(30_000));
    const whole = await readFile((await packSlug(app, join(work, 'whole.tgz'))).path);
    await rm(app, { recursive: true });
    await rm(join(work, 'whole.tgz'));
    for (let i = 0; i < 50; i++) {
      const cut = Math.max(1, Math.floor((whole.length * i) / 50) + (i % 7));
      const err = await expectRefused(whole.subarray(0, cut), 'FLOTILLA_SLUG_CORRUPT').catch(
        (e: unknown) => e,
      );
      expect([cut, err instanceof SlugError ? err.code : String(err)]).toEqual([
        cut,
        'FLOTILLA_SLUG_CORRUPT',
      ]);
    }
  });

  it('a name or link target holding a NUL byte, and names of 10 MB', async () => {
    // In a ustar field a NUL ends the name ('ok' is what tar reads too); a pax header carries it.
    const nul = await expectRefused(
      await craft([{ header: { name: 'ok', pax: { path: 'ok\0../../evil' } }, body: 'x' }]),
      'FLOTILLA_SLUG_ESCAPE',
    );
    expect(nul.message.length).toBeLessThan(1000);
    await expectRefused(
      await craft([
        {
          header: { name: 'l', type: 'symlink', linkname: 'ok', pax: { linkpath: 'ok\0/../../x' } },
        },
      ]),
      'FLOTILLA_SLUG_LINK',
    );
    const huge = 'n'.repeat(10 * 1024 * 1024);
    for (const slug of [
      await craft([file(huge)]),
      await craft([file(`d/${huge}`)]),
      await craft([symlink('l', huge)]),
    ]) {
      const err = await expectRefused(slug, 'FLOTILLA_SLUG_CORRUPT').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlugError);
      expect((err as Error).message.length).toBeLessThan(1000);
    }
  });

  it('a name longer than the filesystem takes: one component, or the whole path', async () => {
    const component = await expectRefused(
      await craft([file('n'.repeat(300))]),
      'FLOTILLA_SLUG_NAME_TOO_LONG',
    );
    expect(component.entry).toMatch(/^n{80}/);
    expect(component.message.length).toBeLessThan(1000);
    const deep = Array.from({ length: 30 }, () => 'd'.repeat(200)).join('/');
    const path = await expectRefused(await craft([file(deep)]), 'FLOTILLA_SLUG_NAME_TOO_LONG');
    expect(path.message.length).toBeLessThan(1000);
  });

  it('a tampered byte: a digest mismatch when a digest is expected, corrupt otherwise', async () => {
    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'data'), randomBytes(100_000));
    const packed = await packSlug(app, join(work, 'good.tgz'));
    const bytes = await readFile(packed.path);
    await rm(app, { recursive: true });
    await rm(packed.path);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0x01, middle);
    const err = await expectRefused(bytes, 'FLOTILLA_SLUG_DIGEST', {
      expectedSha256: packed.sha256,
    });
    expect(err.message).toContain(packed.sha256);
    await expectRefused(bytes, 'FLOTILLA_SLUG_CORRUPT');
  });

  it('a readable slug with the wrong digest; a hostile slug with the right one is refused for what it is', async () => {
    const good = await craft([file('a')]);
    const wrong = createHash('sha256').update('something else').digest('hex');
    await expectRefused(good, 'FLOTILLA_SLUG_DIGEST', { expectedSha256: wrong });
    const hostile = await craft([file('../evil')]);
    const right = createHash('sha256').update(hostile).digest('hex');
    await expectRefused(hostile, 'FLOTILLA_SLUG_ESCAPE', { expectedSha256: right });
  });

  it('bad options', async () => {
    const good = await craft([file('a')]);
    for (const options of [
      { maxBytes: -1 },
      { maxEntries: Number.NaN },
      { expectedSha256: 'abc' },
    ] as ExtractSlugOptions[]) {
      await expectRefused(good, 'FLOTILLA_SLUG_INVALID_ARGUMENT', options);
    }
  });
});

describe('extractSlug of tar variants', () => {
  it('accepts ./ prefixes, a root entry, implicit directories and an internal hard link', async () => {
    const src = join(work, 'slug.tgz');
    await writeFile(
      src,
      await craft([
        dir('./'),
        file('./deep/er/file', 'hello'),
        hardlink('./same', 'deep/er/file'),
        { header: { name: 'run', mode: 0o4755 }, body: '#!/bin/sh\n' },
      ]),
    );
    const result = await extractSlug(src, target);
    expect(result).toEqual({ files: 3, bytes: 15 });
    expect(await readFile(join(target, 'same'), 'utf8')).toBe('hello');
    expect(execFileSync('stat', ['-c', '%a', join(target, 'run')], { encoding: 'utf8' })).toBe(
      '755\n',
    );
  });
});

describe('abort mid-extract', () => {
  it('rejects with the reason and leaves nothing, while the slug is still arriving', async () => {
    const app = join(work, 'app');
    await mkdir(app);
    for (let i = 0; i < 20; i++) await writeFile(join(app, `f${i}`), randomBytes(64 * 1024));
    const { path } = await packSlug(app, join(work, 'app.tgz'));
    const bytes = await readFile(path);
    await rm(app, { recursive: true });
    await rm(path);

    // A FIFO stands for a slow download: the first half arrives, the rest never does.
    const fifo = join(work, 'slug.tgz');
    execFileSync('mkfifo', [fifo]);
    const controller = new AbortController();
    const reason = new Error('stop extracting');
    const extracting = extractSlug(fifo, target, { signal: controller.signal });
    extracting.catch(() => undefined);
    const writer = createWriteStream(fifo);
    await new Promise<void>((resolve, reject) =>
      writer.write(bytes.subarray(0, bytes.length >> 1), (err) => (err ? reject(err) : resolve())),
    );
    controller.abort(reason);
    await expect(extracting).rejects.toBe(reason);
    writer.destroy();
    expect(await readdir(out)).toEqual([]);
  });
});
