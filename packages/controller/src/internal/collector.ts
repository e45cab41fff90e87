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
  for (const app of await p.repo.apps(options)) {
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
    }
    const byAge = builds; // in creation order
    for (const b of byAge.slice(-n)) if (b.artifact?.type === 'slug') keep.add(b.artifact.sha256);
    // The stored output of finished builds older than the newest ones goes too.
    for (const b of byAge.slice(0, Math.max(0, byAge.length - Math.max(n, KEEP_BUILD_OUTPUTS))))
      if (b.status === 'succeeded' || b.status === 'failed')
        await pruneOutput(p, app.name, b.id, options);
  }
  const deleted: string[] = [];
  const fresh = p.o.clock.now() - 10 * 60_000;
  for (const a of await p.o.artifacts.list()) {
    if (keep.has(a.digest) || a.createdAt > fresh) continue;
    if (await p.o.artifacts.delete(a.digest)) deleted.push(a.digest);
  }
  return deleted;
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
