import { execFile } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, posix, resolve as resolvePath } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as tar from 'tar-stream';
import { DockerError, DockerErrorCodes } from '../errors.js';

const execFileP = promisify(execFile);

/** A program of the stack image, with the Debian package that provides it. */
export interface StackProgram {
  readonly name: string;
  readonly pkg: string;
  readonly required: boolean;
}

const COREUTILS = `[ arch b2sum base32 base64 basename basenc cat chgrp chmod chown chroot cksum comm cp
  csplit cut date dd df dir dircolors dirname du echo env expand expr factor false fmt fold groups
  head hostid id install join link ln logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup
  nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd readlink realpath rm rmdir runcon
  seq sha1sum sha224sum sha256sum sha384sum sha512sum shred shuf sleep sort split stat stdbuf stty
  sum sync tac tail tee test timeout touch tr true truncate tsort tty uname unexpand uniq unlink
  users vdir wc who whoami yes`;
const REQUIRED_COREUTILS = new Set(
  'cat chmod cp cut date dirname basename env head id ln ls mkdir mktemp mv rm sleep sort tail tee touch tr true false uname wc'.split(
    ' ',
  ),
);

/**
 * What the stack image holds, by program: what buildpacks of the public ecosystem call
 * (bash, coreutils, sed, grep, tar, gzip, curl), node and npm, and a few tools scripts expect.
 */
export const STACK_PROGRAMS: readonly StackProgram[] = [
  { name: 'bash', pkg: 'bash', required: true },
  { name: 'sh', pkg: 'dash', required: true },
  ...COREUTILS.split(/\s+/).map((name) => ({
    name,
    pkg: 'coreutils',
    required: REQUIRED_COREUTILS.has(name),
  })),
  { name: 'sed', pkg: 'sed', required: true },
  { name: 'grep', pkg: 'grep', required: true },
  { name: 'egrep', pkg: 'grep', required: false },
  { name: 'fgrep', pkg: 'grep', required: false },
  { name: 'tar', pkg: 'tar', required: true },
  { name: 'gzip', pkg: 'gzip', required: true },
  { name: 'gunzip', pkg: 'gzip', required: false },
  { name: 'zcat', pkg: 'gzip', required: false },
  { name: 'curl', pkg: 'curl', required: true },
  { name: 'node', pkg: 'nodejs', required: true },
  { name: 'npm', pkg: 'npm', required: true },
  { name: 'npx', pkg: 'npm', required: false },
  { name: 'find', pkg: 'findutils', required: false },
  { name: 'xargs', pkg: 'findutils', required: false },
  { name: 'xz', pkg: 'xz-utils', required: false },
  { name: 'which', pkg: 'debianutils', required: false },
  { name: 'mawk', pkg: 'mawk', required: false },
  { name: 'awk', pkg: 'mawk', required: false },
  { name: 'diff', pkg: 'diffutils', required: false },
  { name: 'ps', pkg: 'procps', required: false },
  { name: 'kill', pkg: 'procps', required: false },
  { name: 'setsid', pkg: 'util-linux', required: false },
  { name: 'getent', pkg: 'libc-bin', required: false },
  { name: 'hostname', pkg: 'hostname', required: false },
];

/** Files copied as they are, when the host has them. */
const HOST_FILES: readonly { path: string; pkg: string; required: boolean }[] = [
  { path: '/etc/ssl/certs/ca-certificates.crt', pkg: 'ca-certificates', required: true },
];

const SEARCH_PATH = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin'];
/** Top-level directories that are links into /usr on a merged-/usr system, and in the image. */
const MERGED = ['bin', 'sbin', 'lib', 'lib64'];

/** One entry of the root filesystem, sorted by `path` (no leading slash). */
export type RootEntry =
  | {
      readonly type: 'file';
      readonly path: string;
      readonly source: string;
      readonly mode: number;
      readonly size: number;
      readonly mtimeMs: number;
    }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string }
  | {
      readonly type: 'directory';
      readonly path: string;
      readonly mode: number;
      readonly uid: number;
    }
  | {
      readonly type: 'content';
      readonly path: string;
      readonly content: string;
      readonly mode: number;
    };

/** The root filesystem of the stack image, and the digest of everything it is made of. */
export interface RootFs {
  readonly entries: readonly RootEntry[];
  readonly digest: string;
  /** The optional programs that this host lacks (left out). */
  readonly missing: readonly string[];
}

/** `/bin/x` -> `usr/bin/x`: the image is merged-/usr whatever the host is. */
function imagePath(abs: string): string {
  const rel = abs.replace(/^\/+/, '');
  const top = rel.split('/')[0] ?? '';
  return MERGED.includes(top) ? `usr/${rel}` : rel;
}

// The collection uses synchronous fs calls: some 2,500 lstats through the thread pool took over
// half a second on a busy machine, synchronously about 20 ms.
function isFile(path: string): boolean {
  try {
    return lstatSync(realpathSync(path)).isFile();
  } catch {
    return false;
  }
}

function findProgram(name: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const candidate = join(dir, name);
    if (isFile(candidate)) return candidate;
  }
  return undefined;
}

function isElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    readSync(fd, buf, 0, 4, 0);
    return buf.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

/** ldd's answers by `path size mtime`: ldd runs ld.so once per file, about 5 ms each. */
type LddCache = Record<string, string[]>;

function lddKey(file: string): string {
  const st = lstatSync(file);
  return `${file} ${st.size} ${st.mtimeMs}`;
}

function readLddCache(path: string | undefined): LddCache {
  if (path === undefined) return {};
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as LddCache) : {};
  } catch {
    return {}; // none yet, or unreadable: it is only a cache, rebuilt below
  }
}

function writeLddCache(path: string | undefined, cache: LddCache): void {
  if (path === undefined) return;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache));
    renameSync(tmp, path);
  } catch {
    // a read-only cache dir only costs time
  }
}

/**
 * The shared libraries of ELF files (transitively, as ldd lists them), from `cacheFile` for
 * files unchanged since they were asked, else from one ldd call.
 */
async function sharedLibraries(
  files: readonly string[],
  cacheFile: string | undefined,
): Promise<string[]> {
  const cache = readLddCache(cacheFile);
  const keys = new Map(files.map((f) => [f, lddKey(f)]));
  const todo = files.filter((f) => !Array.isArray(cache[keys.get(f) as string]));
  if (todo.length > 0) {
    for (const [file, libs] of await runLdd(todo)) cache[keys.get(file) as string] = libs;
    const fresh: LddCache = {};
    for (const key of keys.values()) if (cache[key] !== undefined) fresh[key] = cache[key];
    writeLddCache(cacheFile, fresh);
  }
  const libs = new Set<string>();
  for (const key of keys.values()) for (const lib of cache[key] ?? []) libs.add(lib);
  return [...libs].sort();
}

async function runLdd(files: readonly string[]): Promise<Map<string, string[]>> {
  let stdout: string;
  try {
    ({ stdout } = await execFileP('ldd', [...files], { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    // ldd exits 1 when one of them is static: its output still lists the others' libraries
    stdout = (err as { stdout?: string }).stdout ?? '';
    if (stdout === '') {
      throw new DockerError(
        DockerErrorCodes.STACK_INPUT,
        `ldd failed on ${files.join(' ')}: install Debian package libc-bin (apt-get install libc-bin)`,
        { cause: err },
      );
    }
  }
  const out = new Map<string, string[]>(files.map((f) => [f, []]));
  // with several files, ldd heads each one's list with "<file>:"
  let current = files.length === 1 ? files[0] : undefined;
  for (const line of stdout.split('\n')) {
    if (files.length > 1 && line.endsWith(':') && out.has(line.slice(0, -1))) {
      current = line.slice(0, -1);
      continue;
    }
    const m = /=>\s+(\/\S+)\s+\(/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m?.[1] !== undefined && current !== undefined) out.get(current)?.push(m[1]);
  }
  return out;
}

class Collector {
  readonly #entries = new Map<string, RootEntry>();

  has(path: string): boolean {
    return this.#entries.has(path);
  }

  set(entry: RootEntry): void {
    this.#entries.set(entry.path, entry);
  }

  /**
   * Adds a host path as the image has it: each symlink on the way becomes a symlink (relative
   * targets kept, absolute ones mapped), the file it ends at a file.
   */
  addPath(abs: string, depth = 0): void {
    if (depth > 40) throw new Error(`too many levels of symlinks at ${abs}`);
    // resolve the parent directories (a merged /lib is a link to usr/lib: handled by imagePath)
    const parent = realpathSync(dirname(abs));
    const hostPath = join(parent, abs.slice(dirname(abs).length + 1));
    const path = imagePath(hostPath);
    if (this.#entries.has(path)) return;
    const st = lstatSync(hostPath);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(hostPath);
      this.set({ type: 'symlink', path, target });
      this.addPath(resolvePath(parent, target), depth + 1);
    } else if (st.isFile()) {
      this.set({
        type: 'file',
        path,
        source: hostPath,
        mode: st.mode & 0o7777,
        size: st.size,
        mtimeMs: st.mtimeMs,
      });
    } else if (st.isDirectory()) {
      this.addTree(hostPath);
    }
  }

  /** Adds a directory tree of the host (npm's), files, links and directories as they are. */
  addTree(hostDir: string): void {
    const path = imagePath(hostDir);
    if (this.#entries.has(path)) return;
    const st = lstatSync(hostDir);
    this.set({ type: 'directory', path, mode: st.mode & 0o7777, uid: 0 });
    for (const name of readdirSync(hostDir)) {
      const child = join(hostDir, name);
      const cst = lstatSync(child);
      if (cst.isDirectory()) this.addTree(child);
      else if (cst.isSymbolicLink()) {
        this.set({ type: 'symlink', path: imagePath(child), target: readlinkSync(child) });
      } else if (cst.isFile()) {
        this.set({
          type: 'file',
          path: imagePath(child),
          source: child,
          mode: cst.mode & 0o7777,
          size: cst.size,
          mtimeMs: cst.mtimeMs,
        });
      }
    }
  }

  /** The entries with every parent directory, sorted so that parents come first. */
  entries(): RootEntry[] {
    for (const e of [...this.#entries.values()]) {
      let dir = posix.dirname(e.path);
      while (dir !== '.' && !this.#entries.has(dir)) {
        this.set({ type: 'directory', path: dir, mode: 0o755, uid: 0 });
        dir = posix.dirname(dir);
      }
    }
    return [...this.#entries.values()].sort((a, b) =>
      a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
    );
  }
}

/** The non-root user builds and jobs run as. */
export const STACK_UID = 1000;
export const STACK_USER = 'flotilla';

function generatedFiles(): RootEntry[] {
  const c = (path: string, content: string, mode = 0o644): RootEntry => ({
    type: 'content',
    path,
    content,
    mode,
  });
  return [
    c(
      'etc/passwd',
      `root:x:0:0:root:/root:/bin/bash\n${STACK_USER}:x:${STACK_UID}:${STACK_UID}:Flotilla:/app:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    ),
    c('etc/group', `root:x:0:\n${STACK_USER}:x:${STACK_UID}:\nnogroup:x:65534:\n`),
    c('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
    c('etc/os-release', 'NAME="Flotilla stack"\nID=flotilla\n'),
  ];
}

const DIRS: readonly RootEntry[] = [
  { type: 'directory', path: 'app', mode: 0o755, uid: STACK_UID },
  { type: 'directory', path: 'dev', mode: 0o755, uid: 0 },
  { type: 'directory', path: 'etc', mode: 0o755, uid: 0 },
  { type: 'directory', path: 'home', mode: 0o755, uid: 0 },
  { type: 'directory', path: 'proc', mode: 0o555, uid: 0 },
  { type: 'directory', path: 'root', mode: 0o700, uid: 0 },
  { type: 'directory', path: 'sys', mode: 0o555, uid: 0 },
  { type: 'directory', path: 'tmp', mode: 0o1777, uid: 0 },
  { type: 'directory', path: 'usr/local/bin', mode: 0o755, uid: 0 },
  { type: 'directory', path: 'var/tmp', mode: 0o1777, uid: 0 },
];

/**
 * Collects the stack image's root filesystem from this host's own files and digests it (paths,
 * modes, sizes, mtimes, link targets, generated content and `recipe`): the same host gives the
 * same digest, an upgraded package a new one. Throws `FLOTILLA_DOCKER_STACK_INPUT` naming the
 * Debian package of a required program that is missing.
 */
export async function collectRootFs(
  recipe: string,
  extraPrograms: readonly string[] = [],
  lddCacheFile?: string,
): Promise<RootFs> {
  const collector = new Collector();
  const missing: string[] = [];
  const programs = [
    ...STACK_PROGRAMS,
    ...extraPrograms.map((name) => ({ name, pkg: name, required: true })),
  ];
  const elves: string[] = [];
  const located = programs.map((p) => [p, findProgram(p.name)] as const);
  for (const [p, found] of located) {
    if (found === undefined) {
      if (p.required) {
        throw new DockerError(
          DockerErrorCodes.STACK_INPUT,
          `the stack image needs ${p.name}, which is not on this host's PATH: install Debian package ${p.pkg} (apt-get install ${p.pkg})`,
          { path: p.name },
        );
      }
      missing.push(p.name);
      continue;
    }
    collector.addPath(found);
    const real = realpathSync(found);
    if (p.name === 'npm') {
      // npm is a tree of scripts: bin/npm-cli.js inside lib/node_modules/npm
      const root = real.replace(/\/bin\/npm-cli\.js$/, '');
      if (root !== real) collector.addTree(root);
    }
    if (isElf(real)) elves.push(real);
  }
  for (const f of HOST_FILES) {
    if (isFile(f.path)) collector.addPath(f.path);
    else if (f.required) {
      throw new DockerError(
        DockerErrorCodes.STACK_INPUT,
        `the stack image needs ${f.path}, which this host lacks: install Debian package ${f.pkg} (apt-get install ${f.pkg})`,
        { path: f.path },
      );
    }
  }
  for (const lib of await sharedLibraries(elves, lddCacheFile)) collector.addPath(lib);
  for (const top of MERGED) {
    if (!collector.has(top)) collector.set({ type: 'symlink', path: top, target: `usr/${top}` });
  }
  for (const d of DIRS) collector.set(d);
  for (const g of generatedFiles()) collector.set(g);
  const entries = collector.entries();
  const hash = createHash('sha256');
  hash.update(`${recipe}\n`);
  for (const e of entries) {
    switch (e.type) {
      case 'file':
        hash.update(`f ${e.path} ${e.mode} ${e.size} ${e.mtimeMs}\n`);
        break;
      case 'symlink':
        hash.update(`l ${e.path} ${e.target}\n`);
        break;
      case 'directory':
        hash.update(`d ${e.path} ${e.mode} ${e.uid}\n`);
        break;
      case 'content':
        hash.update(`c ${e.path} ${e.mode} ${e.content}\n`);
        break;
    }
  }
  return { entries, digest: hash.digest('hex'), missing };
}

/** Writes the root filesystem as a tar stream (uid/gid 0 unless said, mtimes from the host). */
export function packRootFs(rootfs: RootFs, signal?: AbortSignal): tar.Pack {
  const pack = tar.pack();
  void (async () => {
    try {
      for (const e of rootfs.entries) {
        signal?.throwIfAborted();
        if (e.type === 'directory') {
          pack.entry({
            name: `${e.path}/`,
            type: 'directory',
            mode: e.mode,
            uid: e.uid,
            gid: e.uid,
          });
        } else if (e.type === 'symlink') {
          pack.entry({ name: e.path, type: 'symlink', linkname: e.target, mode: 0o777 });
        } else if (e.type === 'content') {
          pack.entry({ name: e.path, mode: e.mode }, e.content);
        } else {
          const entry = pack.entry({
            name: e.path,
            type: 'file',
            mode: e.mode,
            size: e.size,
            mtime: new Date(e.mtimeMs),
          });
          await pipeline(createReadStream(e.source), entry);
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return pack;
}
