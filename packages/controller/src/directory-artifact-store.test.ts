import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runArtifactStoreContract } from './testing/artifact-store-contract.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';

runArtifactStoreContract({
  name: 'DirectoryArtifactStore',
  create: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-artifacts-'));
    return {
      store: new DirectoryArtifactStore({ dir: join(dir, 'store') }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});

it('DirectoryArtifactStore: a slug stored long ago and stored again counts as new (createdAt now)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-artifacts-'));
  try {
    const store = new DirectoryArtifactStore({ dir: join(dir, 'store') });
    const src = join(dir, 'a.tgz');
    await writeFile(src, 'old slug');
    const digest = createHash('sha256').update('old slug').digest('hex');
    await store.put(src);
    const old = new Date(Date.now() - 86_400_000);
    await utimes(join(dir, 'store', `${digest}.tgz`), old, old);
    expect(Math.abs(((await store.stat(digest))?.createdAt ?? 0) - old.getTime())).toBeLessThan(1);
    const again = await store.put(src);
    expect(Date.now() - again.createdAt).toBeLessThan(60_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
