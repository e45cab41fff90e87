import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { retry } from '@flotilla/core';
import { buildImagePrefix, canRemoveImages } from './image-capability.js';
import type { ControllerParts } from './parts.js';

/** How long the removal of an image is tried again (its last container may still be going). */
const IMAGE_REMOVAL_BUDGET_MS = 5000;

/** What {@link removeAppGarbage} deleted, and what it could not. */
export interface AppGarbage {
  /** Slug digests deleted from the artifact store. */
  readonly slugs: string[];
  /** Images removed (tags of the app's Dockerfile builds). */
  readonly images: string[];
  /** Whatever could not be deleted, with why: logged, and left behind. */
  readonly failed: { readonly what: string; readonly err: unknown }[];
}

/**
 * Deletes what belongs to app `name` alone, on the way to destroying it: the slugs of its builds
 * that no build of another app names (two apps pushing the same source share one slug), the
 * images its Dockerfile builds tagged `flotilla/<name>:<build>` that no build of another app runs
 * (an `image` build may name one), its build cache and build trees. Runs while the app's
 * records are still there (a destroy cut short finds the same garbage when run again) and under
 * its lock with the app marked destroying (no build or deploy of it can start). Best effort:
 * what cannot be deleted is logged and reported, never thrown (an abort is); `collectArtifacts`
 * later deletes a slug left behind, as it deletes any slug no app keeps.
 */
export async function removeAppGarbage(
  p: ControllerParts,
  name: string,
  options: { readonly signal?: AbortSignal },
): Promise<AppGarbage> {
  const logger = p.o.logger.child({ app: name });
  // Wall time, as the artifact store's createdAt: a slug stored (again) from now on is another
  // app's build storing the same bytes (this app's builds have ended), about to record it.
  const since = Date.now();
  const slugs = new Set<string>();
  const images = new Set<string>();
  for (const b of await p.repo.builds(name, options)) {
    if (b.artifact?.type === 'slug') slugs.add(b.artifact.sha256);
    else if (
      b.artifact?.type === 'image' &&
      b.builder === 'dockerfile' &&
      b.artifact.image.startsWith(buildImagePrefix(name))
    )
      images.add(b.artifact.image);
  }
  const out: AppGarbage = { slugs: [], images: [], failed: [] };
  const failed = (what: string, err: unknown): void => {
    // An abort is no failure to delete: the destroy stops here, to be run again.
    options.signal?.throwIfAborted();
    out.failed.push({ what, err });
    logger.error({ err, what }, `destroying ${name}: ${what} cannot be deleted; left behind`);
  };
  // Read after this app's builds: a build of another app recorded meanwhile is seen.
  for (const b of await p.repo.allBuilds(options)) {
    if (b.app === name) continue;
    if (b.artifact?.type === 'slug') slugs.delete(b.artifact.sha256);
    else if (b.artifact?.type === 'image') images.delete(b.artifact.image);
  }
  for (const digest of slugs) {
    options.signal?.throwIfAborted();
    try {
      const info = await p.o.artifacts.stat(digest);
      if (info !== undefined && info.createdAt >= since) {
        logger.info(
          { digest },
          `destroying ${name}: slug ${digest} was stored again meanwhile (another app's build of the same source): kept`,
        );
        continue;
      }
      if (info !== undefined && (await p.o.artifacts.delete(digest))) out.slugs.push(digest);
    } catch (err) {
      failed(`slug ${digest}`, err);
    }
  }
  const remover = p.o.imageBuilder;
  if (images.size > 0 && !canRemoveImages(remover))
    logger.warn(
      { images: [...images] },
      `destroying ${name}: the image builder cannot remove images (give removeImage of @flotilla/docker); its images are left`,
    );
  else if (canRemoveImages(remover))
    for (const image of images) {
      options.signal?.throwIfAborted();
      try {
        // The app's last containers may still be on their way out: the agents report a job down
        // before their driver removes its container, and dockerd refuses an image in use.
        const removed = await retry(() => remover.removeImage(image, options), {
          clock: p.o.clock,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          initialMs: 100,
          maxMs: 1000,
          budgetMs: IMAGE_REMOVAL_BUDGET_MS,
          retryable: () => true,
          onRetry: (err, ms) =>
            logger.debug({ err, image, ms }, `destroying ${name}: image not removed yet`),
        });
        if (removed) out.images.push(image);
      } catch (err) {
        failed(`image ${image}`, err);
      }
    }
  // Its build cache, and its build trees (each goes with its build; one a crash cut short stays).
  for (const [what, dir] of [
    ['build cache', join(p.o.workDir, 'cache', name)],
    ['build trees', join(p.o.workDir, 'builds', name)],
  ] as const)
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      failed(what, err);
    }
  options.signal?.throwIfAborted();
  if (out.slugs.length + out.images.length > 0)
    logger.info({ slugs: out.slugs, images: out.images }, `destroying ${name}: artifacts deleted`);
  return out;
}
