// scripts/etcd.mjs, the throwaway etcd of tests and benchmarks: the etcd it starts must not
// outlive the Node process that started it, however that process ends (a test run or bench
// killed with SIGTERM, Ctrl-C, SIGKILL), and the parent's signal must still end it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../scripts/etcd.mjs', import.meta.url));

/** Whether `pid` runs (a zombie nobody reaps counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describe('scripts/etcd.mjs: etcd dies with its parent', () => {
  const parents: ChildProcess[] = [];
  const etcds: number[] = [];
  /** Data directories of etcds whose parent died: no stop() removed them. */
  const dirs: string[] = [];

  afterEach(() => {
    for (const p of parents.splice(0))
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const pid of etcds.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A Node process that starts etcd and idles (as a test file or bench does); its etcd's pid. */
  async function parentWithEtcd(code = ''): Promise<{ parent: ChildProcess; pid: number }> {
    const parent = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(script)});
         const e = await m.startEtcd();
         console.log(e.pid, e.dataDir);
         ${code}
         setInterval(() => {}, 1e9);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    parents.push(parent);
    const [pid, dataDir] = await new Promise<[number, string]>((resolve, reject) => {
      let out = '';
      parent.stdout?.on('data', (d: Buffer) => {
        out += String(d);
        const m = /^(\d+) (.+)\n/.exec(out);
        if (m) resolve([Number(m[1]), m[2] as string]);
      });
      parent.once('exit', (code) => reject(new Error(`the parent exited with ${code}`)));
    });
    dirs.push(dataDir);
    etcds.push(pid);
    expect(alive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/etcd\0--name\0flotilla-test/);
    return { parent, pid };
  }

  const ended = (p: ChildProcess): Promise<{ code: number | null; signal: string | null }> =>
    new Promise((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null)
        resolve({ code: p.exitCode, signal: p.signalCode });
      else p.once('exit', (code, signal) => resolve({ code, signal }));
    });

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
    it(`a parent ended by ${signal} dies of it, and its etcd with it`, async () => {
      const { parent, pid } = await parentWithEtcd();
      parent.kill(signal);
      // The signal's default action: nothing swallowed it.
      expect(await ended(parent)).toEqual({ code: null, signal });
      await expect.poll(() => alive(pid), { timeout: 10_000, interval: 20 }).toBe(false);
    }, 30_000);
  }

  it('a parent that calls process.exit() leaves no etcd', async () => {
    const { parent, pid } = await parentWithEtcd(`setTimeout(() => process.exit(3), 100);`);
    expect(await ended(parent)).toEqual({ code: 3, signal: null });
    await expect.poll(() => alive(pid), { timeout: 10_000, interval: 20 }).toBe(false);
    // Its data directory went with it (a signal's death leaves it: no handler runs).
    expect(existsSync(dirs[0] as string)).toBe(false);
  }, 30_000);
});
