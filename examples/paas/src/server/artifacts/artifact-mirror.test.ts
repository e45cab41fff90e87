import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryArtifactStore } from '@flotilla/controller';
import { ArtifactCache } from '@flotilla/host';
import { MemoryStore } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../e2e/harness.js';
import { ArtifactMirror } from './artifact-mirror.js';

const SLUG = Buffer.from('a slug, as far as this test cares');
const SHA = createHash('sha256').update(SLUG).digest('hex');
let dir: string;
let server: Server;
let base: string;
/** What the loopback server answers `/artifacts/<sha>` with; `hang` never answers. */
let serving: Buffer | 'hang';
let asked = 0;
/** How many requests are answered 503 before the slug is served. */
let failures = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-mirror-'));
  serving = SLUG;
  asked = 0;
  failures = 0;
  server = createServer((req, res) => {
    asked++;
    if (failures > 0) {
      failures--;
      res.writeHead(503).end();
    } else if (serving !== 'hang') res.end(serving);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

function parts(
  attempts = 1,
  collect?: () => Promise<unknown>,
): {
  store: MemoryStore;
  artifacts: DirectoryArtifactStore;
  mirror: ArtifactMirror;
} {
  const store = new MemoryStore();
  const artifacts = new DirectoryArtifactStore({ dir: join(dir, 'artifacts') });
  const cache = new ArtifactCache({ dir: join(dir, 'cache') });
  return {
    store,
    artifacts,
    mirror: new ArtifactMirror({
      store,
      cache,
      artifacts,
      attempts,
      ...(collect === undefined ? {} : { collect }),
    }),
  };
}

const record = (url: string, sha256 = SHA, size = SLUG.length): string =>
  JSON.stringify({ app: 'demo', release: 'v1', artifact: { type: 'slug', url, sha256, size } });

describe('ArtifactMirror', () => {
  it('copies the slug of a release record written before and after it started, once', async () => {
    let collected = 0;
    const { store, artifacts, mirror } = parts(1, () => Promise.resolve(collected++));
    await store.put('cluster/releases/demo/v1', record(`${base}/artifacts/${SHA}`));
    mirror.start();
    // The mirror collects once the copy is stored, a few awaits after the slug's file appears
    // (the put's own stat, its temp file's removal): wait for the collection, not the file.
    await waitFor(
      'the slug copied, then old slugs collected',
      () => Promise.resolve(collected > 0 ? true : undefined),
      10_000,
    );
    expect(await artifacts.stat(SHA)).toBeDefined();
    expect(collected).toBe(1);
    // A restart of the same release names the same slug: nothing is fetched again. Records
    // that name no slug are passed over. A new slug after them shows they were all seen.
    await store.put('cluster/releases/demo/v1-r1', record(`${base}/artifacts/${SHA}`));
    await store.put(
      'cluster/releases/demo/v2',
      JSON.stringify({ artifact: { type: 'image', image: 'x' } }),
    );
    await store.put('cluster/releases/demo/bad', 'not json');
    const next = Buffer.from('the next slug');
    const sha = createHash('sha256').update(next).digest('hex');
    serving = next;
    await store.put(
      'cluster/releases/demo/v3',
      record(`${base}/artifacts/${sha}`, sha, next.length),
    );
    await waitFor(
      'the next slug copied',
      async () => ((await artifacts.stat(sha)) ? true : undefined),
      10_000,
    );
    await mirror.close();
    await mirror.close();
    expect(asked).toBe(2);
    expect(collected).toBe(2);
  });

  it('keeps nothing that is not the slug the record names', async () => {
    const { store, artifacts, mirror } = parts();
    serving = Buffer.from('something else, of the same length!').subarray(0, SLUG.length);
    await store.put('cluster/releases/demo/v1', record(`${base}/artifacts/${SHA}`));
    mirror.start();
    await waitFor('the fetch', () => Promise.resolve(asked > 0 ? true : undefined), 10_000);
    await mirror.close();
    expect(await artifacts.stat(SHA)).toBeUndefined();
    expect(await artifacts.list()).toEqual([]);
  });

  it('copies a slug after a failed attempt; one that always fails is not kept', async () => {
    const { store, artifacts, mirror } = parts(2);
    failures = 1;
    await store.put('cluster/releases/demo/v1', record(`${base}/artifacts/${SHA}`));
    mirror.start();
    await waitFor(
      'the slug copied',
      async () => ((await artifacts.stat(SHA)) ? true : undefined),
      10_000,
    );
    const afterFirst = asked;
    expect(afterFirst).toBeGreaterThan(1);
    // The next slug fails every time: it is tried again, and nothing is kept.
    failures = Number.MAX_SAFE_INTEGER;
    const other = Buffer.from('another slug');
    const sha = createHash('sha256').update(other).digest('hex');
    await store.put(
      'cluster/releases/demo/v2',
      record(`${base}/artifacts/${sha}`, sha, other.length),
    );
    await waitFor(
      'two attempts',
      () => Promise.resolve(asked >= afterFirst + 2 ? true : undefined),
      10_000,
    );
    await mirror.close();
    expect(await artifacts.stat(sha)).toBeUndefined();
  });

  it('close() ends a copy in flight at once', async () => {
    const { store, artifacts, mirror } = parts(6);
    serving = 'hang';
    await store.put('cluster/releases/demo/v1', record(`${base}/artifacts/${SHA}`));
    mirror.start();
    await waitFor('the fetch', () => Promise.resolve(asked > 0 ? true : undefined), 10_000);
    // Without the abort, this would wait for the cache's 30 s idle timeout (the test's is 5 s).
    await mirror.close();
    expect(await artifacts.stat(SHA)).toBeUndefined();
  });
});
