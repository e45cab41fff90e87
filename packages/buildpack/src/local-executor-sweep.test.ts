// Steps run without a cgroup (cgroups: false, or a host where none can be made: not root, no
// delegation, cgroup v1 without a writable freezer): a builder SIGKILLed mid-step left them
// running for good, as nothing could find them again. Each records its process group while it
// runs; the next step run here without a cgroup kills the groups of builders that are gone.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@flotilla/core';
import { hostTag } from './internal/owner.js';
import { LocalExecutor } from './local-executor.js';

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/ [ZX] /.test(stat.slice(stat.lastIndexOf(')')));
}

const step = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, mounts: [], onOutput: () => undefined };

describe('LocalExecutor without cgroups: steps of a SIGKILLed builder', () => {
  let dir: string;
  const strays: number[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-bp-steps-'));
  });
  afterEach(async () => {
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('are killed, the background ones too, by the next step run here; the record goes', async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    if (!existsSync(dist)) throw new Error('packages/buildpack/dist is missing: run `npx tsc -b`');
    const stepsDir = join(dir, 'steps');
    await writeFile(
      join(dir, 'builder.mjs'),
      [
        `import { LocalExecutor } from ${JSON.stringify(dist)};`,
        `await new LocalExecutor({ cgroups: false, stepsDir: ${JSON.stringify(stepsDir)} }).exec({`,
        "  argv: ['bash', '-c', 'sleep 1000 & echo $! $$; exec sleep 999'],",
        "  cwd: '/', env: { PATH: '/usr/bin:/bin' }, mounts: [],",
        '  onOutput: (_s, chunk) => process.stdout.write(chunk),',
        '});',
      ].join('\n'),
    );
    const builder = spawn(process.execPath, [join(dir, 'builder.mjs')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(builder.stdout, 'data')) as [Buffer];
      const [background, leader] = line.toString().trim().split(' ').map(Number) as [
        number,
        number,
      ];
      strays.push(background, leader);
      expect(await readdir(stepsDir)).toEqual([`step-${builder.pid}-${hostTag()}-${leader}.json`]);
      builder.kill('SIGKILL');
      await once(builder, 'exit');
      // What the restarted server found before: both still running, nothing to kill them.
      expect(await alive(background)).toBe(true);
      expect(await alive(leader)).toBe(true);
      await using executor = new LocalExecutor({ cgroups: false, stepsDir });
      expect(await executor.exec({ argv: ['true'], ...step })).toEqual({ code: 0, signal: null });
      expect(await alive(background)).toBe(false);
      expect(await alive(leader)).toBe(false);
      expect(await readdir(stepsDir)).toEqual([]);
    } finally {
      if (builder.exitCode === null && builder.signalCode === null) builder.kill('SIGKILL');
    }
  });

  it("leave a live builder's running step alone; a step's record goes when it ends", async () => {
    const stepsDir = join(dir, 'steps');
    // Closed however the test ends: it kills the step.
    await using a = new LocalExecutor({ cgroups: false, stepsDir });
    const running = a.exec({ argv: ['sleep', '1000'], ...step });
    // The step's record is written once its process is spawned: 10 s, not vitest's 1 s
    // default, for a spawn on a loaded machine.
    await vi.waitFor(async () => expect((await readdir(stepsDir).catch(() => [])).length).toBe(1), {
      timeout: 10_000,
      interval: 20,
    });
    const [record] = await readdir(stepsDir);
    const pgid = Number(/-(\d+)\.json$/.exec(record ?? '')?.[1]);
    strays.push(pgid);
    await using b = new LocalExecutor({ cgroups: false, stepsDir });
    await b.exec({ argv: ['true'], ...step });
    expect(await alive(pgid)).toBe(true);
    await a.close();
    await expect(running).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    expect(await readdir(stepsDir)).toEqual([]);
  });

  it('a record whose leader pid now names another process kills nothing; garbage is reported and removed', async () => {
    const stepsDir = join(dir, 'steps');
    const other = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    strays.push(other.pid as number);
    await mkdir(stepsDir);
    // A builder that is gone (no such pid), its step's pid reused by `other` (another start).
    const gone = 2 ** 22 + 1;
    await writeFile(
      join(stepsDir, `step-${gone}-${hostTag()}-${other.pid}.json`),
      JSON.stringify({ builder: gone, host: hostTag(), pgid: other.pid, start: '1' }),
    );
    await writeFile(join(stepsDir, `step-${gone}-${hostTag()}-7.json`), 'not json\0');
    const warn = vi.fn();
    const logger = { ...silentLogger, warn, child: () => logger };
    await using executor = new LocalExecutor({ cgroups: false, stepsDir, logger });
    await executor.exec({ argv: ['true'], ...step });
    expect(await alive(other.pid as number)).toBe(true);
    expect(await readdir(stepsDir)).toEqual([]);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ file: join(stepsDir, `step-${gone}-${hostTag()}-7.json`) }),
      'a build step record cannot be read: removing it',
    );
  });

  it('trusts no records in a directory others may write, and runs steps all the same', async () => {
    const stepsDir = join(dir, 'shared');
    await mkdir(stepsDir, { mode: 0o777 });
    await chmod(stepsDir, 0o777);
    // Another user's plant: a gone builder, and a process group of ours to kill.
    const victim = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    strays.push(victim.pid as number);
    const start = (await readFile(`/proc/${victim.pid}/stat`, 'utf8'))
      .split(') ')[1]
      ?.split(' ')[19];
    const gone = 2 ** 22 + 3;
    await writeFile(
      join(stepsDir, `step-${gone}-${hostTag()}-${victim.pid}.json`),
      JSON.stringify({ builder: gone, host: hostTag(), pgid: victim.pid, start }),
    );
    const warn = vi.fn();
    const logger = { ...silentLogger, warn, child: () => logger };
    await using executor = new LocalExecutor({ cgroups: false, stepsDir, logger });
    expect(await executor.exec({ argv: ['true'], ...step })).toEqual({ code: 0, signal: null });
    expect(await alive(victim.pid as number)).toBe(true);
    expect(warn).toHaveBeenCalledWith(
      { dir: stepsDir },
      expect.stringMatching(/not this user's alone.*give LocalExecutor a stepsDir of your own/),
    );
    // A directory that cannot be made (where Node's recursive mkdir looped forever): warned,
    // the step runs unrecorded.
    await using other = new LocalExecutor({
      cgroups: false,
      stepsDir: '/proc/flotilla-no',
      logger,
    });
    expect(await other.exec({ argv: ['true'], ...step })).toEqual({ code: 0, signal: null });
  });

  it('refuses a stepsDir that is no path', () => {
    for (const stepsDir of ['', 'a\0b', 7]) {
      expect(() => new LocalExecutor({ stepsDir: stepsDir as string })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_BUILDPACK_INVALID_OPTIONS', path: 'stepsDir' }),
      );
    }
  });
});
