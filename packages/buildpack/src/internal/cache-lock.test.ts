// The cache lock taken by many builders at once, also over a lock left by a builder that is gone.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_LOCK, lockCache } from './cache-lock.js';

/** A pid no process has: above the kernel's largest (pid_max is at most 2^22). */
const GONE_PID = 2 ** 22 + 1;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function cacheDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-cache-lock-'));
  dirs.push(dir);
  return dir;
}

describe('lockCache', () => {
  it('gives a lock left by a builder that is gone to exactly one of many racing builders', async () => {
    for (let round = 0; round < 20; round++) {
      const dir = await cacheDir();
      await writeFile(join(dir, CACHE_LOCK), `${GONE_PID}@${hostname()}\n`);
      // Staggered, so that one racer's takeover can fall between another's read and its rm.
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, async (_, i) => {
          for (let n = 0; n < i * round; n++) await new Promise((r) => setImmediate(r));
          return lockCache(dir);
        }),
      );
      const held = results.filter((r) => r.status === 'fulfilled');
      expect(held, `round ${round}`).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected')
          expect((r.reason as { code?: string }).code).toBe('FLOTILLA_BUILDPACK_CACHE_LOCKED');
    }
  });

  it('takes over a lock of a gone builder also when a taker was killed mid-takeover (its guard left)', async () => {
    const dir = await cacheDir();
    await writeFile(join(dir, CACHE_LOCK), `${GONE_PID}@${hostname()}\n`);
    const guard = join(dir, `${CACHE_LOCK}.takeover`);
    await mkdir(guard);
    const old = new Date(Date.now() - 60_000);
    await utimes(guard, old, old);
    const release = await lockCache(dir);
    expect((await readFile(join(dir, CACHE_LOCK), 'utf8')).trim()).toBe(
      `${process.pid}@${hostname()}`,
    );
    expect(existsSync(guard)).toBe(false);
    await release();
    expect(existsSync(join(dir, CACHE_LOCK))).toBe(false);
  });

  it('does not take over a lock of a gone builder while another builder is taking it over', async () => {
    const dir = await cacheDir();
    await writeFile(join(dir, CACHE_LOCK), `${GONE_PID}@${hostname()}\n`);
    await mkdir(join(dir, `${CACHE_LOCK}.takeover`));
    await expect(lockCache(dir)).rejects.toMatchObject({
      code: 'FLOTILLA_BUILDPACK_CACHE_LOCKED',
    });
  });

  it('gives a free cache to exactly one of many racing builders', async () => {
    const dir = await cacheDir();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => lockCache(dir)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});
