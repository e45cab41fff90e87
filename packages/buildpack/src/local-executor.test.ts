import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@flotilla/core';
import { cgroupParent, StepCgroup } from './internal/cgroup.js';
import { LocalExecutor } from './local-executor.js';
import { runBuildpackSuite } from './testing/index.js';

runBuildpackSuite({ name: 'LocalExecutor', createExecutor: () => new LocalExecutor() });

describe('LocalExecutor', () => {
  const collect = () => {
    const out: Buffer[] = [];
    return {
      onOutput: (_stream: 'stdout' | 'stderr', chunk: Buffer) => out.push(chunk),
      text: () => Buffer.concat(out).toString('utf8'),
    };
  };

  it('gives a step exactly the environment asked for, nothing of its own', async () => {
    await using executor = new LocalExecutor();
    process.env['FLOTILLA_LEAK_PROBE'] = 'leaked';
    try {
      const out = collect();
      const res = await executor.exec({
        argv: ['/usr/bin/env'],
        cwd: tmpdir(),
        env: { ONLY: 'this' },
        mounts: [],
        ...out,
      });
      expect(res).toEqual({ code: 0, signal: null });
      expect(out.text()).toBe('ONLY=this\n');
    } finally {
      delete process.env['FLOTILLA_LEAK_PROBE'];
    }
  });

  it('kills what a step left running in the background when it exits', async () => {
    await using executor = new LocalExecutor();
    const out = collect();
    const res = await executor.exec({
      argv: ['bash', '-c', 'sleep 1000 & echo $!; exit 0'],
      cwd: tmpdir(),
      env: { PATH: '/usr/bin:/bin' },
      mounts: [],
      ...out,
    });
    expect(res).toEqual({ code: 0, signal: null });
    const pid = Number(out.text().trim());
    expect(pid).toBeGreaterThan(0);
    // Not our child: no exit event to await, so watch /proc until the kill has landed.
    await vi.waitFor(
      async () => {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        expect(stat === '' || / Z /.test(stat)).toBe(true);
      },
      { timeout: 5000, interval: 20 },
    );
  });

  it('ends a step at timeoutMs with SIGKILL', async () => {
    await using executor = new LocalExecutor();
    const res = await executor.exec({
      argv: ['sleep', '1000'],
      cwd: tmpdir(),
      env: { PATH: '/usr/bin:/bin' },
      mounts: [],
      timeoutMs: 50,
      onOutput: () => undefined,
    });
    expect(res).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('refuses a timeoutMs no timer keeps (NaN, 0 or less, over 2^31-1) before it runs anything', async () => {
    await using executor = new LocalExecutor();
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-exec-timeout-'));
    try {
      const ran = join(dir, 'ran');
      for (const timeoutMs of [Number.NaN, -1, 0, 2 ** 31, Infinity]) {
        // A timer past 2^31-1 ms fires at once: the step would be killed as it starts.
        await expect(
          executor.exec({
            argv: ['/bin/sh', '-c', 'echo >"$0"', ran],
            cwd: dir,
            env: {},
            mounts: [],
            timeoutMs,
            onOutput: () => undefined,
          }),
          String(timeoutMs),
        ).rejects.toMatchObject({ code: 'FLOTILLA_BUILDPACK_INVALID_OPTIONS', path: 'timeoutMs' });
      }
      expect(existsSync(ran)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails with FLOTILLA_BUILDPACK_EXEC_FAILED for a missing program, a missing cwd, or once closed', async () => {
    const executor = new LocalExecutor();
    const req = { cwd: tmpdir(), env: {}, mounts: [], onOutput: () => undefined };
    await expect(executor.exec({ ...req, argv: ['/nonexistent/program'] })).rejects.toMatchObject({
      code: 'FLOTILLA_BUILDPACK_EXEC_FAILED',
    });
    await expect(
      executor.exec({ ...req, argv: ['/bin/true'], cwd: '/nonexistent/dir' }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_BUILDPACK_EXEC_FAILED' });
    await expect(executor.exec({ ...req, argv: [] })).rejects.toMatchObject({
      code: 'FLOTILLA_BUILDPACK_EXEC_FAILED',
    });
    await executor.close();
    await executor.close();
    await expect(executor.exec({ ...req, argv: ['/bin/true'] })).rejects.toMatchObject({
      code: 'FLOTILLA_BUILDPACK_EXEC_FAILED',
    });
  });

  it('fails with FLOTILLA_BUILDPACK_EXEC_FAILED for a NUL byte in argv, env or cwd, with and without a cgroup', async () => {
    for (const cgroups of [true, false]) {
      await using executor = new LocalExecutor({ cgroups });
      const req = {
        cwd: tmpdir(),
        env: { PATH: '/usr/bin:/bin' },
        mounts: [],
        onOutput: () => undefined,
      };
      for (const bad of [
        { ...req, argv: ['echo', 'a\0b'] },
        { ...req, argv: ['ec\0ho'] },
        { ...req, argv: ['echo'], env: { PATH: '/usr/bin:/bin', X: 'a\0b' } },
        { ...req, argv: ['echo'], cwd: `${tmpdir()}\0x` },
      ]) {
        await expect(executor.exec(bad)).rejects.toMatchObject({
          code: 'FLOTILLA_BUILDPACK_EXEC_FAILED',
        });
      }
    }
  });

  it('kills the step and rejects with what onOutput threw', async () => {
    await using executor = new LocalExecutor();
    const bug = new Error('listener bug');
    await expect(
      executor.exec({
        argv: ['bash', '-c', 'echo hi; exec sleep 1000'],
        cwd: tmpdir(),
        env: { PATH: '/usr/bin:/bin' },
        mounts: [],
        onOutput: () => {
          throw bug;
        },
      }),
    ).rejects.toBe(bug);
  });
});

/** Whether `pid` runs (a zombie does not). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/ [ZX] /.test(stat.slice(stat.lastIndexOf(')')));
}

describe('LocalExecutor: everything a step started', () => {
  const strays: number[] = [];
  afterEach(() => {
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  /** Runs `script`, which prints a pid per line and then `ready`; aborts once it is ready. */
  const abortAfterReady = async (executor: LocalExecutor, script: string): Promise<number[]> => {
    const controller = new AbortController();
    let out = '';
    const err = await executor
      .exec({
        argv: ['bash', '-c', script],
        cwd: tmpdir(),
        env: { PATH: '/usr/bin:/bin' },
        mounts: [],
        signal: controller.signal,
        onOutput: (_stream, chunk) => {
          out += chunk.toString();
          if (out.endsWith('ready\n')) controller.abort(new Error('stop'));
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe('stop');
    const pids = out
      .split('\n')
      .filter((l) => /^\d+$/.test(l))
      .map(Number);
    strays.push(...pids);
    return pids;
  };
  // $! of `setsid sleep &` is the sleep's own pid: setsid, not a group leader there, execs it.
  const detaching =
    'setsid sleep 1000 & echo $!; sleep 1000 & echo $!; echo ready; exec sleep 1000';
  // A double fork: the subshell exits at once, the setsid'd bash is init's child, out of the session.
  const doubleFork =
    '(setsid bash -c "sleep 1000 & echo \\$!; echo \\$\\$; exec sleep 1000" &); sleep 0.2; echo ready; exec sleep 1000';

  it.each([
    ['in a cgroup', true],
    ['without a cgroup', false],
  ])(
    '%s, an abort kills what left the session (setsid) before exec rejects',
    async (_how, cgroups) => {
      await using executor = new LocalExecutor({ cgroups });
      const pids = await abortAfterReady(executor, detaching);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(await alive(pid)).toBe(false);
    },
  );

  it('a step whose cgroup cannot be made runs without one, and an abort still kills what left its session', async () => {
    const warnings: unknown[] = [];
    const logger = {
      ...silentLogger,
      warn: (obj: unknown) => warnings.push(obj),
      child: () => logger,
    };
    const parent = await cgroupParent(); // found before create() fails
    const create = vi
      .spyOn(StepCgroup, 'create')
      .mockRejectedValueOnce(Object.assign(new Error('no space left'), { code: 'ENOSPC' }));
    try {
      await using executor = new LocalExecutor({ logger });
      const pids = await abortAfterReady(executor, detaching);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(await alive(pid)).toBe(false);
      expect(warnings.length).toBe(parent === undefined ? 0 : 1);
    } finally {
      create.mockRestore();
    }
  });

  it('in a cgroup, an abort kills a double-forked daemon before exec rejects', async () => {
    if ((await cgroupParent()) === undefined) {
      // Nothing to check here: no cgroup can be made (not root, no delegation).
      expect(await new LocalExecutor().close()).toBeUndefined();
      return;
    }
    await using executor = new LocalExecutor();
    const pids = await abortAfterReady(executor, doubleFork);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await alive(pid)).toBe(false);
  });

  it('a step given PWD gets it as it is, and one without gets none', async () => {
    await using executor = new LocalExecutor();
    for (const env of [{ PWD: '/given' }, {}]) {
      let out = '';
      await executor.exec({
        argv: ['/usr/bin/env'],
        cwd: tmpdir(),
        env,
        mounts: [],
        onOutput: (_s, chunk) => (out += chunk.toString()),
      });
      expect(out).toBe('PWD' in env ? 'PWD=/given\n' : '');
    }
  });

  it('runs a step in a cgroup of its own where one can be made, and removes it', async () => {
    const parent = await cgroupParent();
    if (parent === undefined) {
      // Nothing to check here: no cgroup can be made (not root, no delegation).
      expect(await new LocalExecutor().close()).toBeUndefined();
      return;
    }
    await using executor = new LocalExecutor();
    let out = '';
    const res = await executor.exec({
      argv: ['cat', '/proc/self/cgroup'],
      cwd: tmpdir(),
      env: { PATH: '/usr/bin:/bin' },
      mounts: [],
      onOutput: (_s, chunk) => (out += chunk.toString()),
    });
    expect(res).toEqual({ code: 0, signal: null });
    const name = /flotilla-step-[\w-]+/.exec(out)?.[0];
    expect(name).toBeDefined();
    expect(existsSync(join(parent.dir, name as string))).toBe(false);
  });

  it('in a cgroup, an orphan that left the session is killed when its step exits', async () => {
    const parent = await cgroupParent();
    if (parent === undefined) {
      expect(await new LocalExecutor().close()).toBeUndefined();
      return;
    }
    await using executor = new LocalExecutor();
    let out = '';
    // The subshell starting the setsid sleep exits at once: the sleep is init's child.
    const res = await executor.exec({
      argv: ['bash', '-c', '(setsid sleep 1000 & echo $!); exit 0'],
      cwd: tmpdir(),
      env: { PATH: '/usr/bin:/bin' },
      mounts: [],
      onOutput: (_s, chunk) => (out += chunk.toString()),
    });
    expect(res).toEqual({ code: 0, signal: null });
    const pid = Number(out.trim());
    strays.push(pid);
    expect(pid).toBeGreaterThan(0);
    expect(await alive(pid)).toBe(false);
  });

  it('refuses options of the wrong kind with FLOTILLA_BUILDPACK_INVALID_OPTIONS', () => {
    expect(() => new LocalExecutor(null as never)).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_BUILDPACK_INVALID_OPTIONS' }),
    );
    expect(() => new LocalExecutor({ cgroups: 'yes' as never })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_BUILDPACK_INVALID_OPTIONS' }),
    );
  });

  it('a builder SIGKILLed mid-step leaves its step running; the next step of this host kills it', async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    if (!existsSync(dist)) throw new Error('packages/buildpack/dist is missing: run `npx tsc -b`');
    const parent = await cgroupParent();
    if (parent === undefined) {
      expect(await new LocalExecutor().close()).toBeUndefined();
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-bp-killed-'));
    await writeFile(
      join(dir, 'builder.mjs'),
      [
        `import { LocalExecutor } from ${JSON.stringify(dist)};`,
        'await new LocalExecutor().exec({',
        "  argv: ['bash', '-c', 'setsid sleep 1000 & echo $!; exec sleep 1000'],",
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
      const pid = Number(line.toString().trim());
      strays.push(pid);
      builder.kill('SIGKILL');
      await once(builder, 'exit');
      expect(await alive(pid)).toBe(true);
      await using executor = new LocalExecutor();
      await executor.exec({
        argv: ['true'],
        cwd: tmpdir(),
        env: { PATH: '/usr/bin:/bin' },
        mounts: [],
        onOutput: () => undefined,
      });
      expect(await alive(pid)).toBe(false);
    } finally {
      if (builder.exitCode === null && builder.signalCode === null) builder.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
