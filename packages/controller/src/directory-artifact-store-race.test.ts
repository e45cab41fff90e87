// DirectoryArtifactStore.put of a digest stored already: one file-system call (utimes), and
// still right when deletes and other puts of the same digest race it.
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DirectoryArtifactStore } from './directory-artifact-store.js';

/** File-system calls the store made, by name; and a hook run before each utimes. */
const calls: string[] = [];
let beforeUtimes: (() => Promise<void>) | undefined;

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof fsp>();
  const counted =
    <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      calls.push(name);
      if (name === 'utimes' && beforeUtimes !== undefined) await beforeUtimes();
      return fn(...a);
    };
  return {
    ...real,
    stat: counted('stat', real.stat),
    utimes: counted('utimes', real.utimes),
    rename: counted('rename', real.rename),
    rm: counted('rm', real.rm),
  };
});

let dir: string;
let store: DirectoryArtifactStore;
let src: string;
let digest: string;
const bytes = 'slug bytes '.repeat(1000);

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'flotilla-artifacts-race-'));
  store = new DirectoryArtifactStore({ dir: join(dir, 'store') });
  src = join(dir, 'slug.tgz');
  await fsp.writeFile(src, bytes);
  digest = createHash('sha256').update(bytes).digest('hex');
  calls.length = 0;
  beforeUtimes = undefined;
});

afterEach(async () => {
  beforeUtimes = undefined;
  await fsp.rm(dir, { recursive: true, force: true });
});

/** What is under the digest's name, hashed; undefined when nothing is. */
async function stored(): Promise<string | undefined> {
  const data = await fsp.readFile(join(dir, 'store', `${digest}.tgz`)).catch(() => undefined);
  return data === undefined ? undefined : createHash('sha256').update(data).digest('hex');
}

describe('DirectoryArtifactStore.put of a digest stored already', () => {
  it('makes one call (utimes) once the copy is hashed, and answers what stat reads back', async () => {
    await store.put(src);
    calls.length = 0;
    const before = Date.now();
    const again = await store.put(src);
    // Besides the temp's removal: the one utimes, no stat, no rename.
    expect(calls.filter((c) => c !== 'rm')).toEqual(['utimes']);
    expect(again).toEqual({ digest, size: bytes.length, createdAt: expect.any(Number) });
    expect(again.createdAt).toBeGreaterThanOrEqual(before);
    expect(await store.stat(digest)).toEqual(again);
  });

  it('a time set in whole ms (by a put, or by hand) reads back as set, for any ms', async () => {
    await store.put(src);
    const file = join(dir, 'store', `${digest}.tgz`);
    const base = Date.now();
    for (let i = 0; i < 500; i++) {
      const at = new Date(base - i * 86_400_007 - i);
      await fsp.utimes(file, at, at);
      expect((await store.stat(digest))?.createdAt).toBe(at.getTime());
    }
  });

  it('deleted between the hash and the touch (collected): stored anew, not answered as there', async () => {
    await store.put(src);
    beforeUtimes = async () => {
      beforeUtimes = undefined;
      expect(await store.delete(digest)).toBe(true);
    };
    const info = await store.put(src);
    expect(await stored()).toBe(digest);
    expect(await store.stat(digest)).toEqual(info);
  });

  it('racing deletes and other puts of the same digest: never a partial file, nothing left behind', async () => {
    await store.put(src);
    for (let round = 0; round < 30; round++) {
      const results = await Promise.allSettled([
        store.put(src),
        store.delete(digest),
        store.put(src),
        round % 2 === 0 ? store.delete(digest) : store.put(src),
      ]);
      for (const r of results) {
        if (r.status === 'rejected') {
          // The one failure allowed: removed right after its rename, retryable.
          expect(r.reason).toMatchObject({ code: 'FLOTILLA_CONTROLLER_CONFLICT', retryable: true });
          continue;
        }
        if (typeof r.value === 'object')
          expect(r.value).toMatchObject({ digest, size: bytes.length });
      }
      // Whatever is under the name is the whole artifact.
      expect([undefined, digest]).toContain(await stored());
    }
    // A put after the race stores it, and no temporary file is left.
    const last = await store.put(src);
    expect(await stored()).toBe(digest);
    expect(await store.stat(digest)).toEqual(last);
    expect(await fsp.readdir(join(dir, 'store'))).toEqual([`${digest}.tgz`]);
  });
});
