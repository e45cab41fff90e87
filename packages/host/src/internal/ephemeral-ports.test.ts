import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ephemeralOverlap } from './ephemeral-ports.js';

describe('ephemeralOverlap', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-ephemeral-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the part of a job port range the kernel may hand to outgoing connections', async () => {
    const file = join(dir, 'range');
    await writeFile(file, '32768\t60999\n');
    expect(await ephemeralOverlap({ from: 20000, to: 20999 }, file)).toBeUndefined();
    expect(await ephemeralOverlap({ from: 32000, to: 33000 }, file)).toEqual({
      from: 32768,
      to: 33000,
    });
    expect(await ephemeralOverlap({ from: 40000, to: 40009 }, file)).toEqual({
      from: 40000,
      to: 40009,
    });
  });

  it('says nothing when the range cannot be read or makes no sense', async () => {
    expect(
      await ephemeralOverlap({ from: 40000, to: 40009 }, join(dir, 'missing')),
    ).toBeUndefined();
    const file = join(dir, 'garbage');
    await writeFile(file, 'not\0numbers');
    expect(await ephemeralOverlap({ from: 40000, to: 40009 }, file)).toBeUndefined();
  });
});
