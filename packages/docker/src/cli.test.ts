// The flotilla-stack bin as npm installs it: node_modules/.bin/flotilla-stack is a symlink to
// dist/cli.js. No dockerd needed: --help and a usage error answer before any Docker call.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, '..', 'dist', 'cli.js');

describe('flotilla-stack run through a symlink', () => {
  let dir: string;
  let link: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-stack-bin-'));
    link = join(dir, 'flotilla-stack');
    symlinkSync(cli, link);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints its usage for --help', () => {
    const res = spawnSync(process.execPath, [link, '--help'], { encoding: 'utf8' });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('usage: flotilla-stack build');
  });

  it('exits 2 on a usage error', () => {
    const res = spawnSync(process.execPath, [link, 'frobnicate'], { encoding: 'utf8' });
    expect(res.status).toBe(2);
    expect(res.stderr).toContain("expected the command 'build'");
  });
});
