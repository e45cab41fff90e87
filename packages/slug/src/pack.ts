import { createHash, randomBytes } from 'node:crypto';
import fs, { constants } from 'node:fs';
import { lstat, open, readdir, readlink, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { SlugError, SlugErrorCodes, quoteName } from './errors.js';
import { checkPath, checkSignal, linkedController, waitDrain } from './internal/streams.js';
import { resolveLink } from './internal/tree.js';
import type { Node } from './internal/tree.js';

/** Options of {@link packSlug}. */
export interface PackSlugOptions {
  /** Aborts the packing; the call then rejects with the signal's `reason` and leaves nothing at `dest`. */
  readonly signal?: AbortSignal;
  /**
   * Entries to leave out. Either paths relative to the directory (`'.git'`, `'tmp/cache'`,
   * POSIX separators, no leading `./`), or a predicate given each such path. Leaving out a
   * directory leaves out everything under it.
   */
  readonly exclude?: readonly string[] | ((path: string) => boolean);
}

/** What {@link packSlug} wrote. */
export interface PackedSlug {
  /** The absolute path of the slug. */
  readonly path: string;
  /** The sha256 of the slug's bytes, in lowercase hex: what `extractSlug`'s `expectedSha256` takes. */
  readonly sha256: string;
  /** The slug's size in bytes. */
  readonly size: number;
  /** How many entries the slug holds: regular files, directories and symlinks (the root not counted). */
  readonly files: number;
}

/** A header as `tar-stream`'s `pack.entry` takes it. */
type EntryHeader = Parameters<tar.Pack['entry']>[0];

/** One entry to pack, found by the walk. */
interface SourceEntry {
  /** Path relative to the root, POSIX separators. */
  readonly path: string;
  readonly node: Node;
  /** Permission bits (`0o777` mask). */
  readonly mode: number;
  /** Bytes, for a regular file. */
  readonly size: number;
  /** What the walk saw of a regular file, to tell whether it changed before it was read. */
  readonly seen?: FileVersion;
}

/** Which file a path named, and which version of it: it changed if any of these did. */
interface FileVersion {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

const versionOf = (st: FileVersion): FileVersion => ({
  dev: st.dev,
  ino: st.ino,
  size: st.size,
  mtimeMs: st.mtimeMs,
});

const sameVersion = (a: FileVersion, b: FileVersion): boolean =>
  a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** Every entry's mtime in a slug: fixed, so that the same tree always gives the same bytes. */
const MTIME = new Date(0);

/**
 * Packs the directory `dir` into a slug, a gzipped tar, at `dest`.
 *
 * The slug is written atomically: to a temporary file beside `dest`, flushed to disk and then
 * renamed onto `dest` (replacing what was there). On any error or abort the temporary file is
 * removed and `dest` is left as it was. The sha256 and size are computed while writing.
 *
 * What a slug holds: regular files with their permission bits (so `bin/` scripts stay
 * executable), directories, and symlinks whose target stays inside the tree. Entries are sorted,
 * their mtimes fixed at the epoch and owners at uid/gid 0, so the same tree always gives the
 * same bytes and the same sha256.
 *
 * @param dir - the directory to pack; `dest`, if inside it, is left out.
 * @param dest - where to write the slug; its directory must exist.
 * @throws {@link SlugError} `FLOTILLA_SLUG_LINK` for a symlink that is absolute or leads outside
 *   `dir`, `FLOTILLA_SLUG_SPECIAL` for a device, FIFO or socket, `FLOTILLA_SLUG_NOT_DIRECTORY`,
 *   `FLOTILLA_SLUG_DEST_NOT_DIRECTORY`, `FLOTILLA_SLUG_CHANGED`, `FLOTILLA_SLUG_INVALID_ARGUMENT`
 *   (also for a `dest` that is a directory); the signal's reason when aborted.
 *
 * @example
 * ```ts
 * import { packSlug } from '@flotilla/slug';
 *
 * const slug = await packSlug('/tmp/build/app', '/var/flotilla/slugs/demo-v3.tgz', {
 *   exclude: ['.git'],
 * });
 * console.log(slug.sha256, slug.size, slug.files);
 * ```
 */
export async function packSlug(
  dir: string,
  dest: string,
  options: PackSlugOptions = {},
): Promise<PackedSlug> {
  checkPath(dir, 'packSlug: dir');
  checkPath(dest, 'packSlug: dest');
  checkSignal(options.signal);
  const exclude = excluder(options.exclude);
  options.signal?.throwIfAborted();

  const root = resolve(dir);
  const target = resolve(dest);
  const rootStat = await stat(root).catch(() => undefined);
  if (rootStat?.isDirectory() !== true) {
    throw new SlugError(
      SlugErrorCodes.NOT_DIRECTORY,
      `packSlug: ${root} is not a directory; pass the directory that holds the app`,
      { path: root },
    );
  }
  // Before the tree is walked (a large one takes a while) and not as a bare ENOENT after it.
  const destDirStat = await stat(dirname(target)).catch(() => undefined);
  if (destDirStat?.isDirectory() !== true) {
    throw new SlugError(
      SlugErrorCodes.DEST_NOT_DIRECTORY,
      `packSlug: ${dirname(target)} is not a directory; make it before packing to ${target}`,
      { path: dirname(target) },
    );
  }
  // A directory at dest would only be refused by the rename at the end, after the walk.
  if ((await lstat(target).catch(() => undefined))?.isDirectory() === true) {
    throw new SlugError(
      SlugErrorCodes.INVALID_ARGUMENT,
      `packSlug: dest ${target} is a directory; name the file to write, such as ${join(target, 'slug.tgz')}`,
      { path: target },
    );
  }
  const destInside = relative(root, target);
  const skip = (path: string): boolean => path === destInside.split(sep).join('/') || exclude(path);

  const entries = await walk(root, skip, options.signal);
  checkLinks(entries);

  const { controller, dispose } = linkedController(options.signal);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', 0o644);
  let closed = false;
  try {
    const hash = createHash('sha256');
    let size = 0;
    const pack = tar.pack();
    // The first failure is the one reported: a refusal while reading the tree, rather than the
    // pipeline's own AbortError once it is torn down.
    let failure: unknown;
    const produce = writeEntries(pack, root, entries, controller.signal).catch((err: unknown) => {
      failure ??= err;
      pack.destroy(err as Error);
      throw err;
    });
    produce.catch(() => undefined);
    try {
      await pipeline(
        Readable.from(pack),
        (source: AsyncIterable<Buffer>) => coalesce(source, GZIP_INPUT_CHUNK),
        createGzip({ chunkSize: GZIP_INPUT_CHUNK }),
        async (source: AsyncIterable<Buffer>) => {
          // Written a few chunks at a time: a write per gzip chunk held gzip back while each
          // went through the thread pool.
          for await (const chunk of coalesce(source, FILE_WRITE)) {
            hash.update(chunk);
            size += chunk.byteLength;
            await file.write(chunk);
          }
        },
        { signal: controller.signal },
      );
    } catch (err) {
      failure ??= err;
      controller.abort(failure);
      pack.destroy();
      await produce.catch(() => undefined);
      throw failure;
    }
    await produce;
    await file.sync();
    closed = true;
    await file.close();
    options.signal?.throwIfAborted();
    await rename(temp, target);
    await syncDirectory(dirname(target));
    return { path: target, sha256: hash.digest('hex'), size, files: entries.length };
  } catch (err) {
    if (!closed) await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    if (options.signal?.aborted === true) throw options.signal.reason;
    throw err;
  } finally {
    dispose();
  }
}

function excluder(exclude: PackSlugOptions['exclude']): (path: string) => boolean {
  if (exclude === undefined) return () => false;
  if (typeof exclude === 'function') return exclude;
  if (Array.isArray(exclude) && exclude.every((p) => typeof p === 'string')) {
    const paths = new Set(
      exclude.map((p) =>
        p
          .split('/')
          .filter((c) => c !== '' && c !== '.')
          .join('/'),
      ),
    );
    return (path) => paths.has(path);
  }
  throw new SlugError(
    SlugErrorCodes.INVALID_ARGUMENT,
    'packSlug: options.exclude must be an array of relative paths or a predicate',
  );
}

/** Lists the tree under `root` depth first, each directory's entries sorted by name. */
async function walk(
  root: string,
  skip: (path: string) => boolean,
  signal: AbortSignal | undefined,
): Promise<SourceEntry[]> {
  const out: SourceEntry[] = [];
  const visit = async (relDir: string): Promise<void> => {
    signal?.throwIfAborted();
    const names = (await readdir(join(root, relDir))).sort();
    for (const name of names) {
      const path = relDir === '' ? name : `${relDir}/${name}`;
      if (skip(path)) continue;
      const abs = join(root, path);
      // Synchronous: a few microseconds, where a promise's trip through the thread pool cost
      // more than the call.
      const st = fs.lstatSync(abs);
      const mode = st.mode & 0o777;
      if (st.isDirectory()) {
        out.push({ path, node: { kind: 'directory' }, mode, size: 0 });
        await visit(path);
      } else if (st.isFile()) {
        out.push({ path, node: { kind: 'file' }, mode, size: st.size, seen: versionOf(st) });
      } else if (st.isSymbolicLink()) {
        out.push({
          path,
          node: { kind: 'symlink', target: await readlink(abs) },
          mode: 0o777,
          size: 0,
        });
      } else {
        throw new SlugError(
          SlugErrorCodes.SPECIAL,
          `packSlug: ${quoteName(path)} is a ${specialKind(st)}; a slug holds only files, directories and symlinks: remove it or exclude it`,
          { entry: path, path: abs },
        );
      }
    }
  };
  await visit('');
  return out;
}

function specialKind(st: {
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

/** Refuses symlinks that are absolute, lead outside the tree, or loop. */
function checkLinks(entries: readonly SourceEntry[]): void {
  const tree = new Map(entries.map((e) => [e.path, e.node]));
  for (const { path, node } of entries) {
    if (node.kind !== 'symlink') continue;
    const where = resolveLink(tree, path, node.target);
    if (where === 'inside') continue;
    const why = node.target.startsWith('/')
      ? 'is absolute: make it relative to the link'
      : where === 'loop'
        ? 'loops'
        : 'leads outside the directory';
    throw new SlugError(
      SlugErrorCodes.LINK,
      `packSlug: symlink ${quoteName(path)} -> ${quoteName(node.target)} ${why}; a slug may only link within itself`,
      { entry: path },
    );
  }
}

/** The size of the pieces handed to gzip, and of those it hands back. */
const GZIP_INPUT_CHUNK = 64 * 1024;

/** The slug is written to its file this much at a time. */
const FILE_WRITE = 256 * 1024;

/**
 * Joins small pieces into chunks of at least `size` bytes: the tar's pieces (a 512-byte header,
 * a file's bytes, its padding) before gzip, gzip's output before the file. Each write to gzip
 * or to the file is a trip through the thread pool, and one per piece cost more than the work.
 */
async function* coalesce(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pieces: Buffer[] = [];
  let bytes = 0;
  for await (const piece of source) {
    pieces.push(piece);
    bytes += piece.byteLength;
    if (bytes >= size) {
      yield Buffer.concat(pieces, bytes);
      pieces = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(pieces, bytes);
}

/** Files up to this size are read whole, with synchronous calls; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;

/**
 * Feeds every entry into `pack`, then finalizes it. A small file is read with synchronous
 * system calls (open, fstat, read, fstat, close: microseconds with the file in the page cache):
 * as promises, each call's round trip through the thread pool, not the disk or gzip, bounded
 * packing to a fraction of tar's speed. The event loop is yielded between entries.
 */
async function writeEntries(
  pack: tar.Pack,
  root: string,
  entries: readonly SourceEntry[],
  signal: AbortSignal,
): Promise<void> {
  for (const entry of entries) {
    signal.throwIfAborted();
    const base = { mode: entry.mode, mtime: MTIME, uid: 0, gid: 0, uname: '', gname: '' };
    if (entry.node.kind === 'directory') {
      await addEntry(pack, { ...base, name: `${entry.path}/`, type: 'directory' });
    } else if (entry.node.kind === 'symlink') {
      await addEntry(pack, {
        ...base,
        name: entry.path,
        type: 'symlink',
        linkname: entry.node.target,
      });
    } else if (entry.size <= SMALL_FILE) {
      const data = readWhole(root, entry);
      await addEntry(
        pack,
        { ...base, name: entry.path, type: 'file', size: data.byteLength },
        data,
      );
    } else {
      await addFile(
        pack,
        root,
        entry,
        { ...base, name: entry.path, type: 'file', size: entry.size },
        signal,
      );
    }
  }
  pack.finalize();
}

/** The error for a file that changed between the walk and its reading. */
function changedError(entry: SourceEntry, how: string, cause?: unknown): SlugError {
  return new SlugError(
    SlugErrorCodes.CHANGED,
    `packSlug: ${quoteName(entry.path)} ${how} while it was packed; pack a tree nothing writes to`,
    { entry: entry.path, cause },
  );
}

/**
 * Reads a small file whole, with the checks {@link addFile} makes: never through a link, and
 * refused if it is not the version the walk saw or changes while it is read.
 */
function readWhole(root: string, entry: SourceEntry): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(join(root, entry.path), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw changedError(entry, 'was deleted or replaced by a link', err);
  }
  try {
    const before = fs.fstatSync(fd);
    const seen = entry.seen;
    if (!before.isFile() || (seen !== undefined && !sameVersion(versionOf(before), seen))) {
      throw changedError(entry, before.isFile() ? 'was written to' : 'was replaced by a directory');
    }
    const data = Buffer.allocUnsafe(entry.size);
    let read = 0;
    while (read < entry.size) {
      const bytesRead = fs.readSync(fd, data, read, entry.size - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    if (read !== entry.size)
      throw changedError(entry, `shrank from ${entry.size} to ${read} bytes`);
    if (!sameVersion(versionOf(fs.fstatSync(fd)), versionOf(before))) {
      throw changedError(entry, 'was written to');
    }
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

function addEntry(pack: tar.Pack, header: EntryHeader, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    const sink = data === undefined ? pack.entry(header, done) : pack.entry(header, data, done);
    sink.on('error', () => undefined); // reported through the callback
  });
}

async function addFile(
  pack: tar.Pack,
  root: string,
  entry: SourceEntry,
  header: EntryHeader,
  signal: AbortSignal,
): Promise<void> {
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined);
  const sink = pack.entry(header, (err) => (err ? settle.reject(err) : settle.resolve()));
  sink.on('error', () => undefined); // reported through the callback
  const changed = (how: string, cause?: unknown): SlugError => {
    const err = new SlugError(
      SlugErrorCodes.CHANGED,
      `packSlug: ${quoteName(entry.path)} ${how} while it was packed; pack a tree nothing writes to`,
      { entry: entry.path, cause },
    );
    sink.destroy(err);
    return err;
  };
  // Never follow a link: a file swapped for one after the walk could lead out of the tree.
  const handle = await open(
    join(root, entry.path),
    constants.O_RDONLY | constants.O_NOFOLLOW,
  ).catch((err: unknown) => {
    throw changed('was deleted or replaced by a link', err);
  });
  let read = 0;
  try {
    const seen = entry.seen;
    const before = await handle.stat();
    if (!before.isFile() || (seen !== undefined && !sameVersion(versionOf(before), seen))) {
      throw changed(before.isFile() ? 'was written to' : 'was replaced by a directory');
    }
    if (entry.size > 0) {
      const stream = handle.createReadStream({ start: 0, end: entry.size - 1, autoClose: false });
      for await (const chunk of stream) {
        signal.throwIfAborted();
        read += (chunk as Buffer).byteLength;
        if (!sink.write(chunk)) await waitDrain(sink, signal);
      }
    }
    if (read !== entry.size) throw changed(`shrank from ${entry.size} to ${read} bytes`);
    if (!sameVersion(versionOf(await handle.stat()), versionOf(before))) {
      throw changed('was written to');
    }
  } finally {
    await handle.close();
  }
  sink.end(undefined);
  await done;
}

/** Flushes a directory's entries (the rename) to disk; a no-op where directories cannot be opened. */
async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (handle === undefined) return;
  try {
    await handle.sync().catch(() => undefined);
  } finally {
    await handle.close();
  }
}
