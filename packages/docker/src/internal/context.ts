import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import ignore from 'ignore';
import * as tar from 'tar-stream';
import { DockerError, DockerErrorCodes } from '../errors.js';

/** A file of the build context, as packed. */
interface ContextEntry {
  readonly rel: string;
  readonly abs: string;
  readonly type: 'file' | 'directory' | 'symlink';
  readonly mode: number;
  readonly size: number;
  readonly mtime: Date;
  readonly target?: string;
}

/**
 * Lists a build context as Docker sends it: everything under `dir` but what `.dockerignore`
 * excludes (its patterns, `!` exceptions), with the Dockerfile and `.dockerignore` always
 * kept. Devices, FIFOs and sockets are left out. Throws `FLOTILLA_DOCKER_CONTEXT` over
 * `maxBytes`.
 */
export async function listContext(
  dir: string,
  dockerfile: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<ContextEntry[]> {
  let patterns = '';
  try {
    patterns = await readFile(join(dir, '.dockerignore'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw contextError(`cannot read ${join(dir, '.dockerignore')}`, err);
  }
  const ig = ignore().add(patterns.split(/\r?\n/).map((l) => l.trim().replace(/^\/+/, '')));
  const always = new Set([dockerfile, '.dockerignore']);
  const out: ContextEntry[] = [];
  let total = 0;
  const walk = async (abs: string): Promise<void> => {
    signal?.throwIfAborted();
    let names: string[];
    try {
      names = (await readdir(abs)).sort();
    } catch (err) {
      throw contextError(`cannot read the directory ${abs}`, err);
    }
    for (const name of names) {
      const child = join(abs, name);
      const rel = relative(dir, child).split(sep).join('/');
      const st = await lstat(child);
      const ignored = !always.has(rel) && ig.ignores(st.isDirectory() ? `${rel}/` : rel);
      if (st.isDirectory()) {
        // an ignored directory may hold a `!` exception: look inside unless nothing could match
        if (!ignored)
          out.push({
            rel,
            abs: child,
            type: 'directory',
            mode: st.mode & 0o7777,
            size: 0,
            mtime: st.mtime,
          });
        await walk(child);
        continue;
      }
      if (ignored) continue;
      if (st.isSymbolicLink()) {
        out.push({
          rel,
          abs: child,
          type: 'symlink',
          mode: 0o777,
          size: 0,
          mtime: st.mtime,
          target: await readlink(child),
        });
      } else if (st.isFile()) {
        total += st.size;
        if (total > maxBytes) {
          throw new DockerError(
            DockerErrorCodes.CONTEXT,
            `the build context ${dir} is over ${maxBytes} bytes: leave build outputs and dependencies out with .dockerignore, or raise maxContextBytes`,
            { path: dir },
          );
        }
        out.push({
          rel,
          abs: child,
          type: 'file',
          mode: st.mode & 0o7777,
          size: st.size,
          mtime: st.mtime,
        });
      }
    }
  };
  await walk(dir);
  return out;
}

/** Packs listed context entries as a tar stream. */
export function packContext(entries: readonly ContextEntry[], signal?: AbortSignal): tar.Pack {
  const pack = tar.pack();
  void (async () => {
    try {
      for (const e of entries) {
        signal?.throwIfAborted();
        if (e.type === 'directory') {
          pack.entry({ name: `${e.rel}/`, type: 'directory', mode: e.mode, mtime: e.mtime });
        } else if (e.type === 'symlink') {
          pack.entry({
            name: e.rel,
            type: 'symlink',
            linkname: e.target ?? '',
            mode: 0o777,
            mtime: e.mtime,
          });
        } else {
          const entry = pack.entry({
            name: e.rel,
            type: 'file',
            mode: e.mode,
            size: e.size,
            mtime: e.mtime,
          });
          await pipeline(createReadStream(e.abs), entry);
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return pack;
}

function contextError(what: string, cause: unknown): DockerError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new DockerError(DockerErrorCodes.CONTEXT, `${what}${detail}`, { cause });
}
