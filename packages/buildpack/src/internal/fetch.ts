// Getting a buildpack onto the host, into a directory of the build's own: a bundled one or a
// local directory is copied, a git URL cloned (optional #ref), a .tgz (path or http(s) URL)
// downloaded and extracted with @flotilla/slug's checks. The executor never fetches.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { extractSlug } from '@flotilla/slug';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { bundledBuildpackDir } from '../bundled.js';

/** The most bytes a buildpack archive may have, downloaded or inflated. */
const MAX_ARCHIVE_BYTES = 512 * 1024 * 1024;

/** Where a buildpack comes from, as parsed from its spec string. */
export type BuildpackSource =
  | { readonly kind: 'bundled'; readonly name: string }
  | { readonly kind: 'directory'; readonly path: string }
  | { readonly kind: 'archive'; readonly path: string }
  | { readonly kind: 'download'; readonly url: string }
  | { readonly kind: 'git'; readonly url: string; readonly ref: string | undefined };

const ARCHIVE = /\.(?:tgz|tar\.gz)$/i;
const REF = /^[A-Za-z0-9_][A-Za-z0-9._/-]*$/;

const invalid = (spec: string, why: string): BuildpackError =>
  new BuildpackError(
    BuildpackErrorCodes.INVALID_OPTIONS,
    `buildpack ${JSON.stringify(spec.slice(0, 300))} ${why}; give a bundled name (flotilla/nodejs), an absolute path, a git URL (with an optional #ref) or a .tgz path or URL`,
    { buildpack: spec },
  );

/** Parses a buildpack spec; throws `FLOTILLA_BUILDPACK_INVALID_OPTIONS` for one it cannot use. */
export function parseBuildpackSpec(spec: string): BuildpackSource {
  if (typeof spec !== 'string' || spec.trim() === '') throw invalid(String(spec), 'is empty');
  if (spec.includes('\0') || /[\r\n]/.test(spec)) throw invalid(spec, 'holds a NUL or newline');
  const bundled = /^(?:flotilla|heroku)\/([a-z]+)$/.exec(spec);
  if (bundled !== null && bundledBuildpackDir(bundled[1] ?? '') !== undefined) {
    return { kind: 'bundled', name: bundled[1] ?? '' };
  }
  if (isAbsolute(spec)) {
    return ARCHIVE.test(spec) ? { kind: 'archive', path: spec } : { kind: 'directory', path: spec };
  }
  const hash = spec.indexOf('#');
  const base = hash === -1 ? spec : spec.slice(0, hash);
  const ref = hash === -1 ? undefined : spec.slice(hash + 1);
  if (ref !== undefined && (!REF.test(ref) || ref.includes('..'))) {
    throw invalid(spec, 'has a #ref that is not a branch, tag or commit name');
  }
  const git = (url: string): BuildpackSource => ({ kind: 'git', url, ref });
  if (/^git@[^\s:]+:[^\s]+$/.test(base)) return git(base);
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw invalid(spec, 'is neither a bundled name, an absolute path nor a URL');
  }
  switch (url.protocol) {
    case 'http:':
    case 'https:':
      if (ARCHIVE.test(url.pathname) && ref === undefined) {
        return { kind: 'download', url: url.href };
      }
      return git(base);
    case 'file:':
      if (ARCHIVE.test(url.pathname) && ref === undefined) {
        return { kind: 'archive', path: fileURLToPath(url) };
      }
      return git(base);
    case 'git:':
    case 'ssh:':
      return git(base);
    default:
      throw invalid(spec, `has the URL scheme ${url.protocol} (use http, https, git, ssh or file)`);
  }
}

/** Fetches the buildpack `spec` into the new directory `dest`; returns the buildpack's root. */
export async function fetchBuildpack(
  spec: string,
  source: BuildpackSource,
  dest: string,
  signal: AbortSignal | undefined,
): Promise<string> {
  const failed = (why: string, cause?: unknown, retryable = false): BuildpackError =>
    new BuildpackError(
      BuildpackErrorCodes.FETCH_FAILED,
      `cannot fetch buildpack ${JSON.stringify(spec)}: ${why}`,
      { buildpack: spec, cause, retryable },
    );
  let root = dest;
  switch (source.kind) {
    case 'bundled':
    case 'directory': {
      const from =
        source.kind === 'bundled' ? (bundledBuildpackDir(source.name) ?? '') : source.path;
      const st = await stat(from).catch(() => undefined);
      if (st?.isDirectory() !== true) throw failed(`${from} is not a directory`);
      await cp(from, dest, { recursive: true, verbatimSymlinks: true }).catch((err: unknown) => {
        throw failed((err as Error).message, err);
      });
      break;
    }
    case 'archive':
    case 'download': {
      await mkdir(dest);
      const archive = `${dest}.tgz`;
      try {
        if (source.kind === 'download') await download(source.url, archive, signal, failed);
        const st = await stat(source.kind === 'archive' ? source.path : archive).catch(
          () => undefined,
        );
        if (st?.isFile() !== true)
          throw failed(`${source.kind === 'archive' ? source.path : archive} is not a file`);
        await extractSlug(source.kind === 'archive' ? source.path : archive, dest, {
          maxBytes: MAX_ARCHIVE_BYTES,
          ...(signal === undefined ? {} : { signal }),
        }).catch((err: unknown) => {
          if (signal?.aborted === true) throw signal.reason;
          throw failed(`not a usable .tgz (${(err as Error).message})`, err);
        });
      } finally {
        await rm(archive, { force: true });
      }
      // Archives of a repository (GitHub's) hold one top directory with the buildpack in it.
      const names = await readdir(dest);
      if (!names.includes('bin') && names.length === 1) {
        const only = join(dest, names[0] ?? '');
        if ((await stat(only)).isDirectory()) root = only;
      }
      break;
    }
    case 'git':
      await clone(source.url, source.ref, dest, signal, failed);
      break;
  }
  for (const script of ['detect', 'compile']) {
    const path = join(root, 'bin', script);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() !== true) {
      throw new BuildpackError(
        BuildpackErrorCodes.INVALID_BUILDPACK,
        `buildpack ${JSON.stringify(spec)} has no bin/${script}; a buildpack needs bin/detect and bin/compile (and may have bin/release)`,
        { buildpack: spec, path },
      );
    }
  }
  // Archives and some checkouts lose the executable bit; the copy is ours to fix.
  for (const script of ['detect', 'compile', 'release']) {
    const path = join(root, 'bin', script);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() === true && (st.mode & 0o100) === 0) await chmod(path, st.mode | 0o755);
  }
  return root;
}

async function download(
  url: string,
  file: string,
  signal: AbortSignal | undefined,
  failed: (why: string, cause?: unknown, retryable?: boolean) => BuildpackError,
): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', ...(signal === undefined ? {} : { signal }) });
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason;
    throw failed(`request failed (${(err as Error).message})`, err, true);
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel().catch(() => undefined);
    throw failed(`HTTP ${res.status}`, undefined, res.status >= 500 || res.status === 429);
  }
  let bytes = 0;
  try {
    await pipeline(
      Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          bytes += chunk.byteLength;
          if (bytes > MAX_ARCHIVE_BYTES) throw failed(`larger than ${MAX_ARCHIVE_BYTES} bytes`);
          yield chunk;
        }
      },
      createWriteStream(file, { flags: 'wx' }),
      ...(signal === undefined ? [] : [{ signal }]),
    );
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason;
    if (err instanceof BuildpackError) throw err;
    throw failed(`download broke off (${(err as Error).message})`, err, true);
  }
}

async function clone(
  url: string,
  ref: string | undefined,
  dest: string,
  signal: AbortSignal | undefined,
  failed: (why: string, cause?: unknown, retryable?: boolean) => BuildpackError,
): Promise<void> {
  const env = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: 'file:git:http:https:ssh',
    GIT_CONFIG_NOSYSTEM: '1',
  };
  // git runs in a process group of its own, killed whole on abort: its remote helpers
  // (git-remote-http, ssh) outlived a git killed alone.
  const git = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn('git', args, {
        env,
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        if (stderr.length < 64 * 1024) stderr += d;
      });
      const kill = (): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      };
      const settle = (err: Error | undefined): void => {
        signal?.removeEventListener('abort', kill);
        if (signal?.aborted === true) reject(signal.reason as Error);
        else if (err) reject(Object.assign(err, { stderr }));
        else resolve();
      };
      child.once('error', (err) => settle(err));
      child.once('close', (code, sig) =>
        settle(code === 0 ? undefined : new Error(`git ${args[0]} ended with ${code ?? sig}`)),
      );
      if (signal?.aborted === true) kill();
      else signal?.addEventListener('abort', kill, { once: true });
    });
  const why = (err: unknown): string =>
    ((err as { stderr?: string }).stderr ?? (err as Error).message)
      .trim()
      .split('\n')
      .slice(-3)
      .join(' ');
  const branch = ref === undefined ? [] : ['--branch', ref];
  try {
    await git(['clone', '--quiet', '--depth', '1', ...branch, '--', url, dest]);
    return;
  } catch (err) {
    if (signal?.aborted === true) throw err;
    if (ref === undefined) throw failed(`git clone failed: ${why(err)}`, err);
  }
  // A commit id cannot be cloned with --branch: clone it all and check the commit out.
  await rm(dest, { recursive: true, force: true });
  try {
    await git(['clone', '--quiet', '--', url, dest]);
    await git(['-C', dest, 'checkout', '--quiet', '--detach', ref, '--']);
  } catch (err) {
    if (isAborted(signal)) throw err;
    throw failed(`git clone of ${ref} failed: ${why(err)}`, err);
  }
}

/** Whether `signal` has aborted (a function, so that TypeScript does not narrow it for good). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
