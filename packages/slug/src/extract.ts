import { createHash } from 'node:crypto';
import fs, { createReadStream } from 'node:fs';
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rename,
  rm,
  symlink,
} from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { SlugError, SlugErrorCodes, quoteName } from './errors.js';
import { checkPath, checkSignal, linkedController, waitDrain } from './internal/streams.js';
import { resolveLink, splitName } from './internal/tree.js';
import type { Node } from './internal/tree.js';

/** Options of {@link extractSlug}. */
export interface ExtractSlugOptions {
  /** Aborts the extraction; the call then rejects with the signal's `reason` and leaves nothing at the target. */
  readonly signal?: AbortSignal;
  /** The most bytes the slug's files may add up to. Default {@link DEFAULT_MAX_BYTES} (2 GiB). */
  readonly maxBytes?: number;
  /** The most entries (files, directories, links) the slug may hold. Default {@link DEFAULT_MAX_ENTRIES}. */
  readonly maxEntries?: number;
  /**
   * The sha256 the slug file must have, 64 hex digits. It is computed while the slug is read and
   * checked before anything is moved into place.
   */
  readonly expectedSha256?: string;
}

/** What {@link extractSlug} wrote. */
export interface ExtractedSlug {
  /** How many entries were created: regular files, directories, symlinks and hard links (the root not counted). */
  readonly files: number;
  /** The bytes of all regular files written. */
  readonly bytes: number;
}

/** The default {@link ExtractSlugOptions.maxBytes}: 2 GiB. */
export const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;

/** The default {@link ExtractSlugOptions.maxEntries}: one million. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;

/**
 * Slack for what a tar holds besides file data (headers, padding, long names), on top of
 * 8 KiB per entry: past `maxBytes` plus this, a slug is refused as too large even if its
 * entries declare nothing (a stream of empty blocks is a decompression bomb too).
 */
const TAR_OVERHEAD = 64 * 1024 ** 2;

/**
 * Extracts the slug `src` into the directory `dir`, refusing anything that could write outside
 * it or leave something dangerous behind.
 *
 * `dir` must be absent or an empty directory (its parents are created). The slug is extracted
 * into a temporary directory beside `dir`, which is renamed onto `dir` only once every entry is
 * written and the digest checked; on any error or abort it is removed, so `dir` is either
 * complete or untouched.
 *
 * Refused, with a {@link SlugError}: entry names that are absolute or contain `..`
 * (`FLOTILLA_SLUG_ESCAPE`); symlinks and hard links that are absolute or lead outside `dir`, also
 * through chains of links, and entries written through a symlink (`FLOTILLA_SLUG_LINK`);
 * devices, FIFOs and other special entries (`FLOTILLA_SLUG_SPECIAL`); a name used twice
 * (`FLOTILLA_SLUG_CONFLICT`); more than `maxBytes` (`FLOTILLA_SLUG_TOO_LARGE`, checked against
 * each entry's declared size before it is written) or `maxEntries`
 * (`FLOTILLA_SLUG_TOO_MANY_ENTRIES`); a corrupt or truncated gzip or tar
 * (`FLOTILLA_SLUG_CORRUPT`); a sha256 other than `expectedSha256` (`FLOTILLA_SLUG_DIGEST`, also
 * when the damage made the slug unreadable). An aborted call rejects with the signal's reason.
 *
 * Permissions: files keep their executable bits and get `rw` for the owner; nothing is
 * group- or world-writable, setuid, setgid or sticky (file modes are masked with `0o755`).
 * Owners and mtimes in the slug are ignored.
 *
 * @example
 * ```ts
 * import { extractSlug } from '@flotilla/slug';
 *
 * const { files, bytes } = await extractSlug('/var/cache/flotilla/demo-v3.tgz', '/srv/jobs/web.1', {
 *   expectedSha256: release.artifact.sha256,
 *   signal: AbortSignal.timeout(60_000),
 * });
 * ```
 */
export async function extractSlug(
  src: string,
  dir: string,
  options: ExtractSlugOptions = {},
): Promise<ExtractedSlug> {
  checkPath(src, 'extractSlug: src');
  checkPath(dir, 'extractSlug: dir');
  checkSignal(options.signal);
  const maxBytes = checkLimit(options.maxBytes, DEFAULT_MAX_BYTES, 'maxBytes');
  const maxEntries = checkLimit(options.maxEntries, DEFAULT_MAX_ENTRIES, 'maxEntries');
  const expected = checkDigest(options.expectedSha256);
  options.signal?.throwIfAborted();

  const target = resolve(dir);
  await checkTarget(target);
  await mkdir(dirname(target), { recursive: true });
  const temp = await mkdtemp(join(dirname(target), `.${basename(target)}.slug-`));
  const { controller, dispose } = linkedController(options.signal);
  try {
    const result = await extractInto(src, temp, {
      maxBytes,
      maxEntries,
      expected,
      signal: controller.signal,
    });
    options.signal?.throwIfAborted();
    await chmod(temp, 0o755);
    await rename(temp, target).catch((err: unknown) => {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
        throw notEmpty(target, err);
      }
      throw err;
    });
    return result;
  } catch (err) {
    controller.abort(err);
    await rm(temp, { recursive: true, force: true });
    if (options.signal?.aborted === true) throw options.signal.reason;
    throw await explain(err, src, expected);
  } finally {
    dispose();
  }
}

interface Limits {
  readonly maxBytes: number;
  readonly maxEntries: number;
  readonly expected: string | undefined;
  readonly signal: AbortSignal;
}

/** Streams `src` through sha256, gunzip and tar into `root` (a fresh, empty directory). */
async function extractInto(src: string, root: string, limits: Limits): Promise<ExtractedSlug> {
  const hash = createHash('sha256');
  const extract = tar.extract();
  const writer = new TreeWriter(root, limits);
  const stop = linkedController(limits.signal);
  const signal = stop.controller.signal;
  let inflated = 0;
  // What went wrong in the slug itself, as gunzip and the tar parser saw it.
  let damage: Error | undefined;
  let feedError: unknown;
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  gunzip.on('error', (err: Error & { code?: unknown }) => {
    if (typeof err.code === 'string' && err.code.startsWith('Z_')) damage ??= err;
  });
  extract.on('error', (err: unknown) => {
    if (err !== feedError && err instanceof Error && !(err instanceof SlugError)) damage ??= err;
  });

  const feed = pipeline(
    createReadStream(src, { signal, highWaterMark: 256 * 1024 }),
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    }),
    gunzip,
    async (source: AsyncIterable<Buffer>) => {
      try {
        for await (const chunk of source) {
          inflated += chunk.byteLength;
          if (inflated > limits.maxBytes + TAR_OVERHEAD + 8192 * writer.entries) {
            throw new SlugError(
              SlugErrorCodes.TOO_LARGE,
              `extractSlug: the slug inflates past ${limits.maxBytes} bytes of files plus tar overhead; raise maxBytes if it is genuine`,
            );
          }
          if (extract.destroyed) throw new Error('tar parser closed');
          if (!extract.write(chunk)) await waitDrain(extract, signal);
        }
        extract.end(undefined);
      } catch (err) {
        // Node's pipeline rejects with an AbortError of its own when its last stage throws.
        feedError ??= err;
        throw err;
      }
    },
    { signal },
  ).catch((err: unknown) => {
    feedError ??= err;
    extract.destroy(feedError as Error);
    throw err;
  });
  feed.catch(() => undefined);

  // What failed writing an entry (I/O): reported before the AbortError it makes the feed fail with.
  let writeError: unknown;
  try {
    for await (const entry of extract) {
      await writer.add(entry).catch((err: unknown) => {
        writeError = err;
        throw err;
      });
    }
    await feed;
  } catch (err) {
    stop.controller.abort(err);
    extract.destroy();
    await feed.catch(() => undefined);
    // Our own refusals first, then the slug's damage, then whatever else failed (I/O).
    if (err instanceof SlugError) throw err;
    if (feedError instanceof SlugError) throw feedError;
    limits.signal.throwIfAborted();
    if (damage !== undefined) throw corrupt(src, damage);
    throw writeError ?? feedError ?? err;
  } finally {
    stop.dispose();
  }
  writer.checkLinks();
  if (limits.expected !== undefined) {
    const actual = hash.digest('hex');
    if (actual !== limits.expected) throw digestMismatch(src, limits.expected, actual);
  }
  return { files: writer.created, bytes: writer.bytes };
}

/** One entry of a tar being read: its header, and a stream of its data. */
type Entry = tar.Extract extends AsyncIterable<infer S> ? S : never;

/** Writes entries into a fresh directory, keeping a model of what it holds to judge links. */
class TreeWriter {
  readonly #root: string;
  readonly #limits: Limits;
  readonly #tree = new Map<string, Node>();
  entries = 0;
  created = 0;
  bytes = 0;

  constructor(root: string, limits: Limits) {
    this.#root = root;
    this.#limits = limits;
  }

  /** Writes one entry, or refuses it with a {@link SlugError}. */
  async add(entry: Entry): Promise<void> {
    try {
      await this.#add(entry);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENAMETOOLONG') throw err;
      const name = entry.header.name;
      throw new SlugError(
        SlugErrorCodes.NAME_TOO_LONG,
        `extractSlug: the name ${quoteName(name)} (${name.length} characters) is longer than the filesystem takes; rebuild the slug with shorter names`,
        { entry: name, cause: err },
      );
    }
  }

  async #add(entry: Entry): Promise<void> {
    const header = entry.header;
    const name = header.name;
    if (++this.entries > this.#limits.maxEntries) {
      throw new SlugError(
        SlugErrorCodes.TOO_MANY_ENTRIES,
        `extractSlug: the slug holds more than ${this.#limits.maxEntries} entries (at ${quoteName(name)}); raise maxEntries if it is genuine`,
        { entry: name },
      );
    }
    const type = header.type ?? 'file';
    const size = header.size ?? 0;
    if (type !== 'file' && size > 0) {
      throw new SlugError(
        SlugErrorCodes.CORRUPT,
        `extractSlug: the ${type} entry ${quoteName(name)} carries ${size} bytes of data; the slug is corrupt`,
        { entry: name },
      );
    }
    if (type !== 'file' && type !== 'directory' && type !== 'symlink' && type !== 'link') {
      throw new SlugError(
        SlugErrorCodes.SPECIAL,
        `extractSlug: ${quoteName(name)} is a ${type} entry; a slug holds only files, directories and links: rebuild it without`,
        { entry: name },
      );
    }
    const parts = this.#split(name);
    if (parts.length === 0) {
      if (type === 'directory') return;
      throw new SlugError(
        SlugErrorCodes.CONFLICT,
        `extractSlug: the ${type} entry ${quoteName(name)} names the slug's root; rebuild the slug`,
        { entry: name },
      );
    }
    const path = parts.join('/');
    await this.#parents(parts, name);
    const existing = this.#tree.get(path);
    if (existing !== undefined) {
      if (existing.kind === 'directory' && type === 'directory') {
        await chmod(join(this.#root, path), dirMode(header.mode));
        return;
      }
      throw new SlugError(
        SlugErrorCodes.CONFLICT,
        `extractSlug: ${quoteName(name)} is in the slug twice; rebuild it with each path once`,
        { entry: name },
      );
    }
    const abs = join(this.#root, path);
    switch (type) {
      case 'directory':
        makeDirectory(abs, dirMode(header.mode));
        this.#tree.set(path, { kind: 'directory' });
        break;
      case 'file':
        await this.#file(entry, abs, name, size, header.mode);
        this.#tree.set(path, { kind: 'file' });
        break;
      case 'symlink':
        await this.#symlink(abs, path, name, header.linkname ?? '');
        break;
      case 'link':
        await this.#hardlink(abs, path, name, header.linkname ?? '');
        break;
    }
    this.created++;
  }

  /** Re-judges every symlink against the finished tree: a later link can change where an earlier one leads. */
  checkLinks(): void {
    for (const [path, node] of this.#tree) {
      if (node.kind === 'symlink') this.#judge(path, path, node.target);
    }
  }

  #split(name: string): string[] {
    const parts = splitName(name);
    if (typeof parts !== 'string') return parts;
    const why = {
      absolute: 'is absolute',
      'dot-dot': 'has a ".." component',
      nul: 'contains a NUL byte',
    }[parts];
    throw new SlugError(
      SlugErrorCodes.ESCAPE,
      `extractSlug: entry ${quoteName(name)} ${why}, so it could land outside the target; a slug's names are relative paths inside it`,
      { entry: name },
    );
  }

  /** Makes sure every parent of `parts` is a real directory, creating missing ones. */
  async #parents(parts: readonly string[], name: string): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const node = this.#tree.get(prefix);
      if (node === undefined) {
        makeDirectory(join(this.#root, prefix), 0o755);
        this.#tree.set(prefix, { kind: 'directory' });
      } else if (node.kind === 'symlink') {
        throw new SlugError(
          SlugErrorCodes.LINK,
          `extractSlug: entry ${quoteName(name)} would be written through the symlink ${quoteName(prefix)}; a slug may not write through its links`,
          { entry: name },
        );
      } else if (node.kind === 'file') {
        throw new SlugError(
          SlugErrorCodes.CONFLICT,
          `extractSlug: entry ${quoteName(name)} is under ${quoteName(prefix)}, which is a file; rebuild the slug`,
          { entry: name },
        );
      }
    }
  }

  async #file(
    entry: Entry,
    abs: string,
    name: string,
    size: number,
    mode: number | undefined,
  ): Promise<void> {
    if (this.bytes + size > this.#limits.maxBytes) {
      throw new SlugError(
        SlugErrorCodes.TOO_LARGE,
        `extractSlug: ${quoteName(name)} (${size} bytes) takes the slug past maxBytes (${this.#limits.maxBytes}); raise maxBytes if it is genuine`,
        { entry: name },
      );
    }
    this.bytes += size;
    if (size <= SMALL_FILE) {
      const pieces: Buffer[] = [];
      let received = 0;
      for await (const chunk of entry) {
        pieces.push(chunk as Buffer);
        received += (chunk as Buffer).byteLength;
      }
      this.#limits.signal.throwIfAborted();
      writeSmallFile(abs, Buffer.concat(pieces, received), fileMode(mode));
      return;
    }
    const handle = await open(abs, 'wx', 0o600);
    try {
      // Written a megabyte at a time: one write per inflated chunk (64 KiB) was a trip through
      // the thread pool each.
      let pieces: Buffer[] = [];
      let pending = 0;
      for await (const chunk of entry) {
        this.#limits.signal.throwIfAborted();
        pieces.push(chunk as Buffer);
        pending += (chunk as Buffer).byteLength;
        if (pending >= LARGE_WRITE) {
          await handle.write(Buffer.concat(pieces, pending));
          pieces = [];
          pending = 0;
        }
      }
      if (pending > 0) await handle.write(Buffer.concat(pieces, pending));
      await handle.chmod(fileMode(mode));
    } finally {
      await handle.close();
    }
  }

  async #symlink(abs: string, path: string, name: string, target: string): Promise<void> {
    this.#judge(path, name, target);
    await symlink(target, abs);
    this.#tree.set(path, { kind: 'symlink', target });
  }

  #judge(path: string, name: string, target: string): void {
    const where =
      target === '' || target.includes('\0') ? 'escape' : resolveLink(this.#tree, path, target);
    if (where === 'inside') return;
    const why = target.startsWith('/')
      ? 'is absolute'
      : where === 'loop'
        ? 'loops'
        : target === '' || target.includes('\0')
          ? 'is empty or holds a NUL byte'
          : 'leads outside the target directory';
    throw new SlugError(
      SlugErrorCodes.LINK,
      `extractSlug: symlink ${quoteName(name)} -> ${quoteName(target)} ${why}; a slug's links must stay inside it`,
      { entry: name },
    );
  }

  async #hardlink(abs: string, path: string, name: string, target: string): Promise<void> {
    const parts = splitName(target);
    const to = typeof parts === 'string' ? undefined : parts.join('/');
    if (to === undefined || this.#tree.get(to)?.kind !== 'file') {
      throw new SlugError(
        SlugErrorCodes.LINK,
        `extractSlug: hard link ${quoteName(name)} -> ${quoteName(target)} does not name a regular file earlier in the slug; a slug's links must stay inside it`,
        { entry: name },
      );
    }
    await link(join(this.#root, to), abs);
    this.#tree.set(path, { kind: 'file' });
  }
}

/** Files up to this size are written whole, with synchronous calls; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;

/** Larger files are written in pieces of this size. */
const LARGE_WRITE = 1024 * 1024;

/**
 * Writes a small file with synchronous system calls (open, write, fchmod, close: microseconds
 * in the page cache). As promises, each call's round trip through the thread pool, not the
 * disk, bounded extraction to a fraction of tar's speed. `O_EXCL`: nothing is overwritten.
 */
function writeSmallFile(abs: string, data: Buffer, mode: number): void {
  const fd = fs.openSync(
    abs,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL,
    0o600,
  );
  try {
    let written = 0;
    while (written < data.byteLength) {
      written += fs.writeSync(fd, data, written, data.byteLength - written);
    }
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates a directory and sets its mode (mkdir's mode is cut by the umask). */
function makeDirectory(abs: string, mode: number): void {
  fs.mkdirSync(abs, { mode: 0o700 });
  fs.chmodSync(abs, mode);
}

/** A file's mode on disk: its permission bits, never setuid/setgid/sticky or group/world-writable, always owner rw. */
function fileMode(mode: number | undefined): number {
  return ((mode ?? 0o644) & 0o755) | 0o600;
}

/** A directory's mode on disk: as for files, always with owner rwx. */
function dirMode(mode: number | undefined): number {
  return ((mode ?? 0o755) & 0o755) | 0o700;
}

function checkLimit(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new SlugError(
      SlugErrorCodes.INVALID_ARGUMENT,
      `extractSlug: options.${name} must be a non-negative integer; got ${String(value)}`,
    );
  }
  return value;
}

function checkDigest(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) {
    throw new SlugError(
      SlugErrorCodes.INVALID_ARGUMENT,
      'extractSlug: options.expectedSha256 must be a sha256 in hex (64 digits)',
    );
  }
  return value.toLowerCase();
}

async function checkTarget(target: string): Promise<void> {
  const st = await lstat(target).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  });
  if (st === undefined) return;
  if (!st.isDirectory() || (await readdir(target)).length > 0) throw notEmpty(target);
}

function notEmpty(target: string, cause?: unknown): SlugError {
  return new SlugError(
    SlugErrorCodes.NOT_EMPTY,
    `extractSlug: ${target} exists and is not an empty directory; extract into a new or empty directory`,
    { path: target, cause },
  );
}

function digestMismatch(src: string, expected: string, actual: string, cause?: unknown): SlugError {
  return new SlugError(
    SlugErrorCodes.DIGEST,
    `extractSlug: ${src} has sha256 ${actual}, not the expected ${expected}; the slug is damaged or not the one meant: fetch it again`,
    { path: src, cause },
  );
}

function corrupt(src: string, cause: Error): SlugError {
  return new SlugError(
    SlugErrorCodes.CORRUPT,
    `extractSlug: ${src} is not a complete gzipped tar (${cause.message}); fetch or build it again`,
    { path: src, cause },
  );
}

/**
 * When a digest was expected and the slug does not match it, the mismatch is what the caller
 * sees, whatever else failed: a damaged download mostly shows as unreadable before its end is
 * hashed, and what to do about it is to fetch it again.
 */
async function explain(err: unknown, src: string, expected: string | undefined): Promise<unknown> {
  if (expected === undefined || (err instanceof SlugError && err.code === SlugErrorCodes.DIGEST)) {
    return err;
  }
  const actual = await hashFile(src).catch(() => undefined);
  if (actual !== undefined && actual !== expected)
    return digestMismatch(src, expected, actual, err);
  return err;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
