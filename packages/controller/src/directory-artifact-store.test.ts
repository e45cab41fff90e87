import { mkdtemp, rm } from 'node:fs/promises';
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
