import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import { ArtifactCache, type SlugArtifact } from './artifact-cache.js';
import { HostErrorCodes } from './errors.js';
import { readStat } from './internal/proc.js';

const SIZE = 64 * 1024;

describe('ArtifactCache eviction', () => {
  let dir: string;
  let cacheDir: string;
  let clock: ManualClock;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-artifact-evict-'));
    cacheDir = join(dir, 'cache');
    clock = new ManualClock(1_700_000_000_000);
  });

  afterEach(async () => {
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
      server = undefined;
    }
    await rm(dir, { recursive: true, force: true });
  });

  /** A slug source file of SIZE random bytes, as a file:// artifact. */
  async function source(name: string): Promise<SlugArtifact & { body: Buffer }> {
    const body = randomBytes(SIZE);
    const file = join(dir, `${name}.tgz`);
    await writeFile(file, body);
    return {
      url: pathToFileURL(file).href,
      sha256: createHash('sha256').update(body).digest('hex'),
      size: SIZE,
      body,
    };
  }

  /** The digests whose verified file is in the cache dir, sorted. */
  async function cached(): Promise<string[]> {
    return (await readdir(cacheDir).catch(() => []))
      .filter((n) => n.endsWith('.slug'))
      .map((n) => n.slice(0, -'.slug'.length))
      .sort();
  }

  /** Gets `a` at the clock's time, then moves the clock on `step` ms (uses are ordered). */
  async function useAt(cache: ArtifactCache, a: SlugArtifact, step = 1000): Promise<string> {
    const path = await cache.get(a);
    await clock.advance(step);
    return path;
  }

  it('removes the least recently used artifacts once the cache is over maxBytes', async () => {
    const [a, b, c] = [await source('a'), await source('b'), await source('c')];
    const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 2 * SIZE, clock });
    await useAt(cache, a);
    await useAt(cache, b);
    await useAt(cache, a); // a is used again: b is now the least recently used
    await cache.prune();
    expect(await cached()).toEqual([a.sha256, b.sha256].sort());
    await useAt(cache, c);
    await cache.prune();
    expect(await cached()).toEqual([a.sha256, c.sha256].sort());
    expect(cache.usage()).toEqual({ bytes: 2 * SIZE, artifacts: 2, pinned: 0, maxBytes: 2 * SIZE });
    // b is fetched again when asked for, and is whole.
    expect((await readFile(await cache.get(b))).equals(b.body)).toBe(true);
  });

  it('never evicts a pinned artifact; it goes once unpinned', async () => {
    const [a, b] = [await source('a'), await source('b')];
    const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 0, clock });
    const pin = cache.pin(a.sha256);
    await useAt(cache, a);
    await useAt(cache, b);
    await cache.prune(); // b went when its get() ended
    expect(await cached()).toEqual([a.sha256]);
    expect(cache.usage()).toMatchObject({ bytes: SIZE, pinned: 1 });
    // Two pins on one digest: it stays until both are gone; unpinning twice is harmless.
    const second = cache.pin(a.sha256);
    pin.unpin();
    pin.unpin();
    await cache.prune();
    expect(await cached()).toEqual([a.sha256]);
    second[Symbol.dispose]();
    await cache.prune();
    expect(await cached()).toEqual([]);
  });

  it('with maxUnusedMs, removes what was not used for that long, even within maxBytes', async () => {
    const [a, b] = [await source('a'), await source('b')];
    const cache = new ArtifactCache({ dir: cacheDir, maxUnusedMs: 60_000, clock });
    using pinned = cache.pin(b.sha256);
    await cache.get(a);
    await cache.get(b);
    await clock.advance(60_000);
    expect(await cache.prune()).toEqual([]);
    await clock.advance(1);
    expect(await cache.prune()).toEqual([a.sha256]);
    expect(await cached()).toEqual([pinned.sha256]);
  });

  it('after a restart, rebuilds its index from the directory: LRU order from the files, leftovers of a crash deleted, strangers kept', async () => {
    const [a, b, c] = [await source('a'), await source('b'), await source('c')];
    const first = new ArtifactCache({ dir: cacheDir, clock });
    await useAt(first, a);
    await useAt(first, b);
    await useAt(first, c);
    await useAt(first, a); // order of use now: b, c, a
    // A download that died with its process, and files the cache does not own.
    const part = join(cacheDir, `.${b.sha256}.dead0001.part`);
    await writeFile(part, randomBytes(100));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(part, old, old);
    await writeFile(join(cacheDir, 'README'), 'operator notes');
    await mkdir(join(cacheDir, `${'f'.repeat(64)}.slug`));

    const second = new ArtifactCache({ dir: cacheDir, maxBytes: 2 * SIZE, clock });
    expect(await second.prune()).toEqual([b.sha256]);
    expect(await cached()).toEqual([a.sha256, c.sha256, 'f'.repeat(64)].sort());
    expect((await readdir(cacheDir)).sort()).toEqual(
      ['.lock', 'README', `${a.sha256}.slug`, `${c.sha256}.slug`, `${'f'.repeat(64)}.slug`].sort(),
    );
    expect(second.usage()).toMatchObject({ bytes: 2 * SIZE, artifacts: 2 });
    // Shrunk further by a third cache: c (used before a) goes next.
    const third = new ArtifactCache({ dir: cacheDir, maxBytes: SIZE, clock });
    expect(await third.prune()).toEqual([c.sha256]);
  });

  it('the leftover of a download cut short just before a restart goes with a later download', async () => {
    const [a, b] = [await source('a'), await source('b')];
    await mkdir(cacheDir, { recursive: true });
    const part = join(cacheDir, `.${a.sha256}.dead0002.part`);
    await writeFile(part, randomBytes(100));
    const cache = new ArtifactCache({ dir: cacheDir, idleTimeoutMs: 60_000, clock });
    await cache.get(a); // reads the dir: the leftover may still be a live download's
    expect((await readdir(cacheDir)).sort()).toContain(`.${a.sha256}.dead0002.part`);
    const old = new Date(Date.now() - 120_000);
    await utimes(part, old, old);
    await cache.get(b);
    expect((await readdir(cacheDir)).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('a file cut short on disk (not the size its release names) is fetched again, not used', async () => {
    const a = await source('a');
    const cache = new ArtifactCache({ dir: cacheDir, clock });
    const path = await cache.get(a);
    await writeFile(path, a.body.subarray(0, 100));
    const again = new ArtifactCache({ dir: cacheDir, clock });
    expect((await readFile(await again.get(a))).equals(a.body)).toBe(true);
    expect(again.usage()).toMatchObject({ bytes: SIZE, artifacts: 1 });
  });

  it('a get() that races an eviction of the same artifact always gets a whole file', async () => {
    const a = await source('a');
    const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 0, clock });
    // Each round: the artifact is on disk and unpinned; an eviction pass starts; after a
    // varying number of ticks a job pins it and gets it. Whichever came first, the path the
    // job gets must hold the artifact while the pin is held.
    for (let ticks = 0; ticks < 16; ticks++) {
      const warm = cache.pin(a.sha256);
      await cache.get(a);
      warm.unpin();
      const pruning = cache.prune();
      for (let i = 0; i < ticks; i++) await Promise.resolve();
      if (ticks >= 8) await new Promise((r) => setImmediate(r));
      const pin = cache.pin(a.sha256);
      const path = await cache.get(a);
      await pruning;
      await cache.prune();
      expect((await readFile(path)).equals(a.body), `after ${ticks} ticks`).toBe(true);
      pin.unpin();
      await cache.prune();
      expect(await cached(), `after ${ticks} ticks`).toEqual([]);
    }
  });

  describe('with a download in flight', () => {
    /** A server that holds each response until `release()`. */
    async function held(body: Buffer): Promise<{
      url: string;
      requests: () => number;
      requested: Promise<void>;
      release: () => void;
    }> {
      const pending: ServerResponse[] = [];
      let count = 0;
      let first: () => void = () => undefined;
      const requested = new Promise<void>((resolve) => (first = resolve));
      server = createServer((_req, res) => {
        count++;
        pending.push(res);
        first();
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/a.tgz`,
        requests: () => count,
        requested,
        release: () => {
          for (const res of pending.splice(0))
            res.writeHead(200, { 'content-length': String(body.length) }).end(body);
        },
      };
    }

    it('an eviction pass while the artifact downloads leaves it alone; two fetches share one download', async () => {
      const a = await source('a');
      const s = await held(a.body);
      const remote = { url: s.url, sha256: a.sha256, size: a.size };
      const other = await source('b');
      const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 0, clock });
      const pin1 = cache.pin(a.sha256);
      const pin2 = cache.pin(a.sha256);
      const one = cache.get(remote);
      const two = cache.get(remote);
      await s.requested;
      // Other artifacts come and go meanwhile: each eviction pass runs while a downloads.
      await cache.get(other);
      await cache.prune();
      expect(await cached()).toEqual([]);
      s.release();
      const [p1, p2] = await Promise.all([one, two]);
      expect(p1).toBe(p2);
      expect(s.requests()).toBe(1);
      await cache.prune();
      expect((await readFile(p1)).equals(a.body)).toBe(true);
      pin1.unpin();
      await cache.prune();
      expect(await cached()).toEqual([a.sha256]);
      pin2.unpin();
      await cache.prune();
      expect(await cached()).toEqual([]);
    });

    it('a discard() while the artifact is fetched again leaves the new copy to the caller that fetches it', async () => {
      const a = await source('a');
      const s = await held(a.body);
      const remote = { url: s.url, sha256: a.sha256, size: a.size };
      const cache = new ArtifactCache({ dir: cacheDir, clock });
      const fetching = cache.get(remote);
      await s.requested;
      // A second job found the same damage and discards too: the download is the fix.
      expect(await cache.discard(a.sha256)).toBe(false);
      s.release();
      const path = await fetching;
      expect((await readFile(path)).equals(a.body)).toBe(true);
      expect(s.requests()).toBe(1);
    });
  });

  it('discard() deletes a damaged copy, pinned or not; the next get() fetches it whole again', async () => {
    const a = await source('a');
    // No room at all: only the pin keeps a copy.
    const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 0, clock });
    const pin = cache.pin(a.sha256);
    const path = await useAt(cache, a);
    await writeFile(path, Buffer.alloc(SIZE)); // rotted, the size unchanged
    expect(await cache.discard(a.sha256)).toBe(true);
    expect(await cached()).toEqual([]);
    expect(cache.usage()).toMatchObject({ bytes: 0, artifacts: 0 });
    expect(await cache.discard(a.sha256)).toBe(false); // nothing left to delete
    expect((await readFile(await cache.get(a))).equals(a.body)).toBe(true);
    // The pin held before holds the new copy.
    expect(cache.usage()).toMatchObject({ bytes: SIZE, artifacts: 1, pinned: 1 });
    await cache.prune();
    expect(await cached()).toEqual([a.sha256]);
    // A second job that read the damaged copy discards it late, once it was fetched again:
    // the good copy stays.
    const fresh = await cache.get(a);
    expect(await cache.discard(a.sha256)).toBe(false);
    expect((await readFile(fresh)).equals(a.body)).toBe(true);
    expect(await cached()).toEqual([a.sha256]);
    pin.unpin();
    await expect(cache.discard('../etc/passwd')).rejects.toMatchObject({
      code: HostErrorCodes.ARTIFACT_INVALID,
    });
  });

  it('a file that cannot be deleted is logged and kept, and the pass goes on', async () => {
    const [a, b] = [await source('a'), await source('b')];
    const errors: unknown[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (o: unknown) => errors.push(o),
      child: () => logger,
    };
    const cache = new ArtifactCache({ dir: cacheDir, maxBytes: 0, clock, logger });
    const pins = [cache.pin(a.sha256), cache.pin(b.sha256)];
    await useAt(cache, b);
    await useAt(cache, a);
    // b's file turns into something rm() refuses (a directory; chmod would not stop root).
    const bPath = join(cacheDir, `${b.sha256}.slug`);
    await rm(bPath);
    await mkdir(join(bPath, 'busy'), { recursive: true });
    for (const p of pins) p.unpin();
    await cache.prune();
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(await cached()).toEqual([b.sha256]);
    expect(cache.usage()).toMatchObject({ artifacts: 1, bytes: SIZE });
  });

  it("refuses a dir another live process's cache holds, and takes it over once that process is gone", async () => {
    const a = await source('a');
    // Another agent's process: its cache wrote the lock file when it first read the dir.
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pid = other.pid as number;
      const stat = await readStat(pid);
      await mkdir(cacheDir, { recursive: true });
      await writeFile(
        join(cacheDir, '.lock'),
        JSON.stringify({ pid, startTime: stat?.startTime ?? 0 }),
      );
      const cache = new ArtifactCache({ dir: cacheDir, clock });
      const err = await cache.get(a).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: HostErrorCodes.ARTIFACT_CACHE_IN_USE, path: 'dir' });
      expect((err as Error).message).toContain(`process ${pid}`);
      await expect(cache.prune()).rejects.toMatchObject({
        code: HostErrorCodes.ARTIFACT_CACHE_IN_USE,
      });
      expect(await cached()).toEqual([]);
      other.kill('SIGKILL');
      await once(other, 'exit');
      // Gone (killed: it released nothing): the lock is taken over.
      expect((await readFile(await cache.get(a))).equals(a.body)).toBe(true);
      // A second cache of this process on the dir (an agent restarted in place) is let in.
      expect(await new ArtifactCache({ dir: cacheDir, clock }).get(a)).toBe(
        join(cacheDir, `${a.sha256}.slug`),
      );
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('refuses bad maxBytes and maxUnusedMs values, a dir with a NUL byte, and a pin of something not a digest', () => {
    for (const maxBytes of [-1, Number.NaN, 1.5, Infinity, '10GB', null])
      expect(
        () => new ArtifactCache({ dir: cacheDir, maxBytes: maxBytes as number }),
        String(maxBytes),
      ).toThrow(
        expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS, path: 'maxBytes' }),
      );
    for (const maxUnusedMs of [0, -5, Number.NaN, 2.5, '1h'])
      expect(
        () => new ArtifactCache({ dir: cacheDir, maxUnusedMs: maxUnusedMs as number }),
        String(maxUnusedMs),
      ).toThrow(
        expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS, path: 'maxUnusedMs' }),
      );
    expect(() => new ArtifactCache({ dir: `${cacheDir}\0x` })).toThrow(
      expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS, path: 'dir' }),
    );
    const cache = new ArtifactCache({ dir: cacheDir });
    for (const sha of ['', 'A'.repeat(64), `${'a'.repeat(63)}/`, `${'a'.repeat(63)}\0`, 42])
      expect(() => cache.pin(sha as string)).toThrow(
        expect.objectContaining({ code: HostErrorCodes.ARTIFACT_INVALID, path: 'sha256' }),
      );
  });
});
