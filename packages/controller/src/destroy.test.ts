// Destroying an app deletes what only it owns (slugs, images, build cache), best effort, and
// its records last: a failed deletion leaves no half-destroyed app, and a new app of the same
// name keeps what it writes once the name is free.
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isFlotillaError, type Logger } from '@flotilla/core';
import { MemoryStore, type Store } from '@flotilla/store';
import type { ArtifactStore } from './artifact-store.js';
import type { LineImageBuildOptions } from './builder.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const APP = { Procfile: 'web: node server.js\n', 'server.js': '// server\n' };
const DOCKER_APP = { Dockerfile: 'FROM flotilla/stack\n', 'server.js': '// server\n' };

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

/** A logger that keeps what is logged as an error. */
function recordingLogger(errors: unknown[]): Logger {
  const noop = (): void => undefined;
  const logger: Logger = {
    debug: noop,
    info: noop,
    warn: noop,
    error: (obj: unknown) => {
      errors.push(obj);
    },
    child: () => logger,
  } as unknown as Logger;
  return logger;
}

async function build(
  hh: Harness,
  app: string,
  files: Record<string, string>,
  n: number,
): Promise<string> {
  const src = await hh.source(files);
  const b = await hh.controller.createBuild(app, { type: 'git', dir: src, sha: sha(n) });
  const done = await hh.controller.waitForBuild(app, b.id);
  expect(done.status).toBe('succeeded');
  return b.id;
}

async function slugOf(hh: Harness, app: string, id: string): Promise<string> {
  const a = (await hh.controller.getBuild(app, id)).artifact;
  if (a?.type !== 'slug') throw new Error(`build ${id} made no slug`);
  return a.sha256;
}

describe('destroyApp: what only the app owns', () => {
  it('deletes its slugs, its images and its build cache; keeps a slug and an image another app uses', async () => {
    // The images dockerd would hold: buildImage tags one, removeImage untags it.
    const images = new Set<string>();
    const removed: string[] = [];
    const refusedOnce = new Set<string>();
    const docker = {
      client: { name: 'docker' },
      buildImage: async (o: LineImageBuildOptions) => {
        images.add(o.tag);
        return { image: o.tag, processTypes: { web: 'node server.js' } };
      },
      // dockerd refuses the first attempt at each image: its last container is still going.
      removeImage: async (o: { image: string }) => {
        if (!refusedOnce.has(o.image)) {
          refusedOnce.add(o.image);
          throw new Error(`conflict: unable to remove ${o.image}: a container still uses it`);
        }
        removed.push(o.image);
        return images.delete(o.image);
      },
    };
    h = await harness({ controller: { docker } });
    await h.controller.createApp({ name: 'demo' });
    await h.controller.createApp({ name: 'other' });
    const image1 = await build(h, 'demo', DOCKER_APP, 1);
    const image2 = await build(h, 'demo', { ...DOCKER_APP, 'v2.js': '//\n' }, 2);
    const own = await slugOf(h, 'demo', await build(h, 'demo', { ...APP, 'own.js': '//\n' }, 3));
    const shared = await slugOf(h, 'demo', await build(h, 'demo', APP, 4));
    // other: the same source (the same slug), and demo's first image run as it is.
    expect(await slugOf(h, 'other', await build(h, 'other', APP, 5))).toBe(shared);
    const imageBuild = await h.controller.createBuild('other', {
      type: 'image',
      image: `flotilla/demo:${image1}`,
      processTypes: { web: 'node server.js' },
    });
    expect((await h.controller.waitForBuild('other', imageBuild.id)).status).toBe('succeeded');
    const cache = join(h.dir, 'work', 'cache', 'demo');
    expect(await exists(cache)).toBe(true);

    await h.controller.destroyApp('demo');
    expect(await h.artifacts.stat(own)).toBeUndefined();
    expect(await h.artifacts.stat(shared)).toBeDefined();
    expect(removed).toEqual([`flotilla/demo:${image2}`]);
    expect([...images]).toEqual([`flotilla/demo:${image1}`]);
    expect(await exists(cache)).toBe(false);
    expect(await exists(join(h.dir, 'work', 'cache', 'other'))).toBe(true);
    // Nothing else of demo's under the work dir (build trees go with their build).
    const work = await readdir(join(h.dir, 'work'), { recursive: true });
    expect(work.filter((p) => p.includes('demo'))).toEqual([]);
  });

  it('a destroy aborted while it removes the images stops there, and running it again finishes it', async () => {
    const images = new Set<string>();
    let allow = false;
    let refused!: () => void;
    const firstRefusal = new Promise<void>((resolve) => (refused = resolve));
    const docker = {
      client: {},
      buildImage: async (o: LineImageBuildOptions) => {
        images.add(o.tag);
        return { image: o.tag, processTypes: { web: 'node server.js' } };
      },
      removeImage: async (o: { image: string }) => {
        if (!allow) {
          refused();
          throw new Error('conflict: a container still uses it');
        }
        return images.delete(o.image);
      },
    };
    h = await harness({ controller: { docker } });
    await h.controller.createApp({ name: 'demo' });
    const slug = await slugOf(h, 'demo', await build(h, 'demo', APP, 1));
    await build(h, 'demo', DOCKER_APP, 2);
    const ac = new AbortController();
    const destroying = h.controller.destroyApp('demo', { signal: ac.signal });
    await firstRefusal;
    ac.abort(new Error('operator gave up'));
    await expect(destroying).rejects.toThrow('operator gave up');
    // Half-way, as a crash would leave it: refused to everyone, its records still there.
    const hidden = await h.controller.getApp('demo').catch((e: unknown) => e);
    expect(isFlotillaError(hidden, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')).toBe(true);
    expect(await h.controller.listApps()).toEqual([]);
    expect((await h.store.list('controller/builds/demo/')).kvs.length).toBeGreaterThan(0);
    allow = true;
    await h.controller.destroyApp('demo');
    expect([...images]).toEqual([]);
    expect(await h.artifacts.stat(slug)).toBeUndefined();
    expect(
      (await h.store.list('controller/')).kvs.filter((kv) => kv.key.includes('/demo')),
    ).toEqual([]);
  });

  it("keeps a slug another app's build stores again while the destroy runs (same source)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-destroy-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const real = new DirectoryArtifactStore({ dir: join(dir, 'artifacts') });
    // The moment the destroy looks at the slug, another app's build stores the same bytes: its
    // build is not recorded yet, so no build of another app names the slug.
    let storedMeanwhile: (() => Promise<unknown>) | undefined;
    const artifacts: ArtifactStore = {
      put: (path, o) => real.put(path, o),
      stat: async (digest) => {
        const hook = storedMeanwhile;
        storedMeanwhile = undefined;
        await hook?.();
        return real.stat(digest);
      },
      open: (digest) => real.open(digest),
      list: () => real.list(),
      url: (digest) => real.url(digest),
      delete: (digest) => real.delete(digest),
    };
    h = await harness({ controller: { artifacts } });
    await h.controller.createApp({ name: 'demo' });
    const digest = await slugOf(h, 'demo', await build(h, 'demo', APP, 1));
    const copy = join(dir, 'copy.tgz');
    await writeFile(copy, await readFile(join(dir, 'artifacts', `${digest}.tgz`)));
    storedMeanwhile = () => real.put(copy, { sha256: digest });
    await h.controller.destroyApp('demo');
    expect(await real.stat(digest)).toBeDefined();
    // Without the hook, the same destroy deletes it (the slug is demo's alone).
    await h.controller.createApp({ name: 'solo' });
    const own = await slugOf(h, 'solo', await build(h, 'solo', { ...APP, 'solo.js': '//\n' }, 2));
    await h.controller.destroyApp('solo');
    expect(await real.stat(own)).toBeUndefined();
  });

  it('a slug that cannot be deleted is logged and left: the app is destroyed all the same, and the slug collected later', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-destroy-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const real = new DirectoryArtifactStore({ dir: join(dir, 'artifacts') });
    let refuse = true;
    const artifacts: ArtifactStore = {
      put: (path, o) => real.put(path, o),
      stat: (digest) => real.stat(digest),
      open: (digest) => real.open(digest),
      list: () => real.list(),
      url: (digest) => real.url(digest),
      delete: async (digest) => {
        if (refuse)
          throw Object.assign(new Error(`EACCES: permission denied, unlink '${digest}.tgz'`), {
            code: 'EACCES',
          });
        return real.delete(digest);
      },
    };
    const errors: unknown[] = [];
    h = await harness({ controller: { artifacts, logger: recordingLogger(errors) } });
    await h.controller.createApp({ name: 'demo' });
    const digest = await slugOf(h, 'demo', await build(h, 'demo', APP, 1));

    await h.controller.destroyApp('demo');
    const gone = await h.controller.getApp('demo').catch((e: unknown) => e);
    expect(isFlotillaError(gone, 'FLOTILLA_CONTROLLER_APP_NOT_FOUND')).toBe(true);
    const left = (await h.store.list('controller/')).kvs
      .map((kv) => kv.key)
      .filter((k) => k.includes('/demo'));
    expect(left).toEqual([]);
    expect(await h.cluster.releases('demo')).toEqual([]);
    expect(errors).toContainEqual(expect.objectContaining({ what: `slug ${digest}` }));
    expect(await real.stat(digest)).toBeDefined();

    // The collector deletes it once it is past its grace (stored ten minutes ago).
    refuse = false;
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(dir, 'artifacts', `${digest}.tgz`), old, old);
    expect(await h.controller.collectArtifacts()).toEqual([digest]);
    // And the name is free.
    await h.controller.createApp({ name: 'demo' });
  });

  it('a new app of the same name, created and built the moment the name is free, keeps its build cache and deploys', async () => {
    const mem = new MemoryStore();
    cleanups.push(() => mem.close());
    let onFree: (() => Promise<void>) | undefined;
    // The store tells when the app's record is deleted: the new app comes in right then, before
    // the destroy has returned.
    const store = new Proxy(mem, {
      get(target, prop) {
        if (prop === 'delete')
          return async (key: string, options?: { signal?: AbortSignal }) => {
            const res = await target.delete(key, options);
            const hook = onFree;
            if (key === 'controller/apps/demo' && hook !== undefined) {
              onFree = undefined;
              await hook();
            }
            return res;
          };
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Store;
    h = await harness({ store });
    await h.controller.createApp({ name: 'demo' });
    await build(h, 'demo', APP, 1);
    const hh = h;
    let rebuilt: string | undefined;
    onFree = async () => {
      await hh.controller.createApp({ name: 'demo' });
      // Built to the end (its deploy waits for the destroy's lock): its cache dir is made.
      const ac = new AbortController();
      const events = hh.controller.events({ app: 'demo', signal: ac.signal });
      const finished = (async () => {
        for await (const e of events) if (e.type === 'build.finished') return e;
        return undefined;
      })();
      const b = await hh.controller.createBuild('demo', {
        type: 'git',
        dir: await hh.source(APP),
        sha: sha(2),
      });
      await finished;
      ac.abort();
      rebuilt = b.id;
    };
    await h.controller.destroyApp('demo');
    expect(rebuilt).toBeDefined();
    expect(await exists(join(h.dir, 'work', 'cache', 'demo'))).toBe(true);
    const digest = await slugOf(h, 'demo', rebuilt as string);
    expect(await h.artifacts.stat(digest)).toBeDefined();
    const outcome = await h.controller.waitForDeploy('demo', rebuilt as string);
    expect(outcome.status).toBe('live');
  });
});
