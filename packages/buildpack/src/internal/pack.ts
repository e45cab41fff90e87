// Packing the built app: a slug without .git at any depth; a tree that cannot be one is
// refused with the build's output. The default slug's directory names the builder as its owner
// until the slug is done (then it is renamed, the caller's), so that one left by a killed
// builder is swept by the next build.
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packSlug, SlugError, type PackedSlug } from '@flotilla/slug';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { checkInterrupted, type StepContext } from './step.js';
import { handOver, makeOwnedDir, SLUG_PREFIX } from './work-dir.js';

/** Packs `ctx.cwd` into `slugPath`, or into a new temporary directory when none is given. */
export async function packBuild(
  ctx: StepContext,
  slugPath: string | undefined,
): Promise<PackedSlug> {
  ctx.log.step('Compressing...');
  const dest = slugPath ?? join(await makeOwnedDir(tmpdir(), SLUG_PREFIX), 'slug.tgz');
  await mkdir(dirname(dest), { recursive: true });
  try {
    const packed = await packSlug(ctx.cwd, dest, {
      exclude: (path) => path === '.git' || path.endsWith('/.git'),
      signal: ctx.signal,
    });
    ctx.log.detail(`Done: ${formatSize(packed.size)}`);
    if (slugPath !== undefined) return packed;
    // Handed over: the caller owns the directory from now on.
    const handed = await handOver(dirname(dest), tmpdir(), SLUG_PREFIX);
    return { ...packed, path: join(handed, 'slug.tgz') };
  } catch (err) {
    if (slugPath === undefined) await rm(dirname(dest), { recursive: true, force: true });
    checkInterrupted(ctx);
    if (err instanceof SlugError) {
      throw new BuildpackError(
        BuildpackErrorCodes.SLUG_REFUSED,
        `the built app cannot be packed as a slug: ${err.message}`,
        {
          output: ctx.log.text(),
          cause: err,
          ...(err.entry === undefined ? {} : { path: err.entry }),
        },
      );
    }
    throw err;
  }
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)}K`;
  return `${(bytes / 1024 ** 2).toFixed(1)}M`;
}
