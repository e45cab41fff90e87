import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateToken } from './token.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-token-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateToken', () => {
  it('makes a token readable by the owner only, and keeps it across starts', async () => {
    const path = join(dir, 'token');
    const a = await loadOrCreateToken(path);
    expect(a.token).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateToken(path);
    expect(b).toEqual(a);
  });

  it('two servers starting at once end with the same token', async () => {
    const path = join(dir, 'token');
    const [a, b] = await Promise.all([loadOrCreateToken(path), loadOrCreateToken(path)]);
    expect(a.token).toBe(b.token);
    expect((await readFile(path, 'utf8')).trim()).toBe(a.token);
  });

  it('refuses a token file that holds garbage, naming it', async () => {
    const path = join(dir, 'token');
    await writeFile(path, 'has spaces and\0nul');
    await expect(loadOrCreateToken(path)).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_DATA_DIR',
      message: expect.stringContaining(path),
    });
  });

  it('takes a given token as it is, and refuses one that cannot travel in a header', async () => {
    expect(await loadOrCreateToken(join(dir, 'token'), 'a-given-token-123456')).toEqual({
      token: 'a-given-token-123456',
      path: undefined,
    });
    await expect(loadOrCreateToken(join(dir, 'token'), 'short')).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_INVALID_OPTIONS',
    });
    await expect(
      loadOrCreateToken(join(dir, 'token'), 'with a newline\n0123456789'),
    ).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_INVALID_OPTIONS',
    });
  });
});
