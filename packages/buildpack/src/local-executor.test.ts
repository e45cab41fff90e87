import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it, vi } from 'vitest';
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
