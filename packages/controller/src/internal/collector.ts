import {
  BUILD_IMAGE,
  buildImagePrefix,
  buildImageTag,
  canCollectImages,
} from './image-capability.js';
import type { ControllerParts } from './parts.js';

/** Builds per app whose output is kept at least. */
const KEEP_BUILD_OUTPUTS = 20;

/**
 * Collects artifacts no app keeps and prunes old build output (see
 * `Controller.collectArtifacts`). Resolves with the digests deleted.
 */
export async function collectArtifacts(
  p: ControllerParts,
  options: { readonly signal?: AbortSignal },
): Promise<string[]> {
  const keep = new Set<string>();
  const n = p.o.keepReleases;
  // Listed before the records are read: an image there was tagged by a build whose record was
  // made before it ran, which the reads below see.
  const images = canCollectImages(p.o.imageBuilder)
    ? await p.o.imageBuilder.listImages('flotilla/*', options).catch((err: unknown) => {
        p.o.logger.warn({ err }, 'the images cannot be listed: none collected');
        return [];
      })
    : [];
  /** Images kept: those the kept releases and builds name, and those of builds not ended. */
  const keepImages = new Set<string>();
  const apps = await p.repo.apps(options);
  for (const app of apps) {
    const builds = await p.repo.builds(app.name, options);
    const byId = new Map(builds.map((b) => [b.id, b]));
    const releases = await p.repo.releases(app.name, options);
    const kept = releases.slice(-n);
    if (app.live !== undefined) {
      const live = releases.find((r) => r.id === app.live?.release);
      if (live !== undefined) kept.push(live);
    }
    for (const r of kept) {
      const a = r.build === undefined ? undefined : byId.get(r.build)?.artifact;
      if (a?.type === 'slug') keep.add(a.sha256);
      else if (a?.type === 'image') keepImages.add(a.image);
    }
    const byAge = builds; // in creation order
    for (const b of byAge.slice(-n)) {
      if (b.artifact?.type === 'slug') keep.add(b.artifact.sha256);
      else if (b.artifact?.type === 'image') keepImages.add(b.artifact.image);
    }
    for (const b of builds)
      if (b.status !== 'succeeded' && b.status !== 'failed')
        keepImages.add(buildImageTag(app.name, b.id));
    // Its destroy removes them (and may still need them to say so).
    if (app.destroying === true)
      for (const tag of images) if (tag.startsWith(buildImagePrefix(app.name))) keepImages.add(tag);
    // The stored output of finished builds older than the newest ones goes too.
    for (const b of byAge.slice(0, Math.max(0, byAge.length - Math.max(n, KEEP_BUILD_OUTPUTS))))
      if (b.status === 'succeeded' || b.status === 'failed')
        await pruneOutput(p, app.name, b.id, options);
  }
  await collectImages(p, images, keepImages, options);
  const deleted: string[] = [];
  const fresh = p.o.clock.now() - 10 * 60_000;
  for (const a of await p.o.artifacts.list()) {
    if (keep.has(a.digest) || a.createdAt > fresh) continue;
    if (await p.o.artifacts.delete(a.digest)) deleted.push(a.digest);
  }
  return deleted;
}

/**
 * Removes the images of Dockerfile builds (`flotilla/<app>:<build id>`, nothing else: not the
 * stack image) that nothing keeps: builds past an app's `keepReleases`, and every build of an
 * app gone (a destroy that could not remove them). Best effort: a failure is logged.
 */
async function collectImages(
  p: ControllerParts,
  images: readonly string[],
  keep: ReadonlySet<string>,
  options: { readonly signal?: AbortSignal },
): Promise<void> {
  const remover = p.o.imageBuilder;
  if (!canCollectImages(remover)) return;
  const removed: string[] = [];
  for (const image of images) {
    if (!BUILD_IMAGE.test(image) || keep.has(image)) continue;
    options.signal?.throwIfAborted();
    try {
      if (await remover.removeImage(image, options)) removed.push(image);
    } catch (err) {
      options.signal?.throwIfAborted();
      p.o.logger.warn({ err, image }, 'an image no release keeps cannot be removed');
    }
  }
  if (removed.length > 0) p.o.logger.info({ images: removed }, 'images no release keeps removed');
}

/** Replaces a build's stored output with one ended line saying it was pruned (once). */
export async function pruneOutput(
  p: ControllerParts,
  app: string,
  build: string,
  options: { readonly signal?: AbortSignal },
): Promise<void> {
  const first = p.keys.output(app, build, 0);
  const kvs = await p.repo.listAll(p.keys.outputOf(app, build), options);
  if (kvs.length === 1 && kvs[0]?.value.includes('"pruned":true')) return;
  const line = {
    seq: 0,
    time: p.o.clock.now(),
    line: '(output pruned: only the newest builds keep theirs)',
  };
  // The first chunk becomes the whole output (ended), then the others go: a follower sees
  // an ended output at every step.
  await p.store.put(first, JSON.stringify({ lines: [line], end: true, pruned: true }), options);
  for (const kv of kvs) if (kv.key !== first) await p.store.delete(kv.key, options);
}
