import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import type { ArtifactStore } from '../artifact-store.js';

/** Options of {@link runArtifactStoreContract}. */
export interface ArtifactStoreContractOptions {
  /** Names the suite (`DirectoryArtifactStore`). */
  readonly name: string;
  /** Makes an empty store for one test; `cleanup` (if given) runs after it. */
  readonly create: () => Promise<{ store: ArtifactStore; cleanup?: () => Promise<void> }>;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (isFlotillaError(e) ? e.code : String(e)),
  );
}

/**
 * The contract every {@link ArtifactStore} passes: put by path (checked against an expected
 * sha256, nothing kept on a mismatch), identical content stored once, stat, open, list, url,
 * delete, bad digests refused. Call it inside a vitest test file.
 *
 * @example
 * ```ts
 * runArtifactStoreContract({ name: 'S3ArtifactStore', create: async () => ({ store: new S3ArtifactStore(bucket) }) });
 * ```
 */
export function runArtifactStoreContract(options: ArtifactStoreContractOptions): void {
  describe(`ArtifactStore contract: ${options.name}`, () => {
    let store: ArtifactStore;
    let cleanup: (() => Promise<void>) | undefined;
    let dir: string;
    const file = async (
      name: string,
      content: string,
    ): Promise<{ path: string; sha256: string }> => {
      const path = join(dir, name);
      await writeFile(path, content);
      return { path, sha256: createHash('sha256').update(content).digest('hex') };
    };

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'flotilla-artifact-contract-'));
      ({ store, cleanup } = await options.create());
    });
    afterEach(async () => {
      await cleanup?.();
      await rm(dir, { recursive: true, force: true });
    });

    it('stores a file by its sha256, leaves the file, and gives it back', async () => {
      const f = await file('a.tgz', 'hello slug');
      const info = await store.put(f.path);
      expect(info).toMatchObject({ digest: f.sha256, size: 10 });
      expect(await readFile(f.path, 'utf8')).toBe('hello slug');
      expect(await store.stat(f.sha256)).toMatchObject({ digest: f.sha256, size: 10 });
      const chunks: Buffer[] = [];
      for await (const c of await store.open(f.sha256)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('hello slug');
      expect((await store.list()).map((a) => a.digest)).toEqual([f.sha256]);
      expect(typeof store.url(f.sha256)).toBe('string');
    });

    it('checks the expected sha256 and keeps nothing of a mismatch', async () => {
      const f = await file('a.tgz', 'content');
      expect(await codeOf(store.put(f.path, { sha256: 'a'.repeat(64) }))).toBe(
        'FLOTILLA_CONTROLLER_ARTIFACT_INVALID',
      );
      expect(await store.list()).toEqual([]);
      expect((await store.put(f.path, { sha256: f.sha256 })).digest).toBe(f.sha256);
    });

    it('stores identical content once, also when put concurrently', async () => {
      const a = await file('a.tgz', 'same');
      const b = await file('b.tgz', 'same');
      const infos = await Promise.all([store.put(a.path), store.put(b.path), store.put(a.path)]);
      expect(new Set(infos.map((i) => i.digest))).toEqual(new Set([a.sha256]));
      expect((await store.list()).length).toBe(1);
    });

    it('storing a digest again makes its createdAt the time of that put', async () => {
      const a = await file('a.tgz', 'again');
      const first = await store.put(a.path);
      const before = Date.now();
      const again = await store.put(a.path);
      expect(again.createdAt).toBeGreaterThanOrEqual(Math.max(first.createdAt, before - 1000));
      expect((await store.stat(a.sha256))?.createdAt).toBe(again.createdAt);
    });

    it('deletes: true once, then false; a deleted artifact cannot be opened', async () => {
      const f = await file('a.tgz', 'bye');
      await store.put(f.path);
      expect(await store.delete(f.sha256)).toBe(true);
      expect(await store.delete(f.sha256)).toBe(false);
      expect(await store.stat(f.sha256)).toBeUndefined();
      expect(await codeOf(store.open(f.sha256))).toBe('FLOTILLA_CONTROLLER_ARTIFACT_INVALID');
    });

    it('refuses digests that are not 64 lowercase hex digits, and missing files', async () => {
      for (const bad of [
        '../../etc/passwd',
        'A'.repeat(64),
        '',
        'a'.repeat(63),
        `${'a'.repeat(63)}\0`,
        'a/'.repeat(32),
      ])
        expect(await codeOf(store.stat(bad)), bad).toBe('FLOTILLA_CONTROLLER_INVALID_INPUT');
      expect(await codeOf(store.put(join(dir, 'missing')))).toBe(
        'FLOTILLA_CONTROLLER_ARTIFACT_INVALID',
      );
      expect(await codeOf(store.put(join(dir, 'x'), { sha256: 'nothex' }))).toBe(
        'FLOTILLA_CONTROLLER_INVALID_INPUT',
      );
    });
  });
}
