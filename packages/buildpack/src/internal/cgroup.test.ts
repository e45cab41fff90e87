// Step cgroups of each kind this host offers (v2 with cgroup.kill, v1 freezer): what runs in
// one is all gone after kill(), also a process that left the session and one forking
// without end.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCandidates, StepCgroup, usable } from './cgroup.js';

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/ [ZX] /.test(stat.slice(stat.lastIndexOf(')')));
}

const candidates = await cgroupCandidates();
const usableOnes: (typeof candidates)[number][] = [];
for (const parent of candidates) if (await usable(parent)) usableOnes.push(parent);

describe('StepCgroup', () => {
  const strays: number[] = [];
  const cgroups: StepCgroup[] = [];
  afterEach(async () => {
    for (const cgroup of cgroups.splice(0)) await cgroup.remove();
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  it.runIf(process.getuid?.() === 0)(
    'finds where this process may make step cgroups, as root',
    () => {
      expect(usableOnes.length).toBeGreaterThan(0);
    },
  );

  describe.each(usableOnes.map((parent) => [`cgroup v${parent.version}`, parent] as const))(
    '%s',
    (_name, parent) => {
      /** Runs `script` inside a new step cgroup; resolves with the pids it prints before `ready`. */
      const runIn = async (script: string): Promise<{ cgroup: StepCgroup; pids: number[] }> => {
        const cgroup = await StepCgroup.create(parent);
        cgroups.push(cgroup);
        const child = spawn(
          '/bin/sh',
          ['-c', 'echo $$ >"$0" && exec bash -c "$1"', cgroup.procsFile, script],
          { stdio: ['ignore', 'pipe', 'inherit'], detached: true },
        );
        strays.push(child.pid as number);
        let out = '';
        child.stdout.setEncoding('utf8');
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (d: string) => {
            out += d;
            if (out.includes('ready\n')) resolve();
          });
          child.once('exit', () => reject(new Error(`exited first: ${out}`)));
        });
        const pids = out
          .split('\n')
          .filter((l) => /^\d+$/.test(l))
          .map(Number);
        strays.push(...pids);
        return { cgroup, pids };
      };

      it('kill() ends every process in it, also one in a session of its own, before it resolves', async () => {
        const { cgroup, pids } = await runIn(
          'setsid sleep 1000 & echo $!; (setsid bash -c "echo \\$\\$; exec sleep 1000" &); sleep 1000 & echo $!; sleep 0.1; echo ready; exec sleep 1000',
        );
        expect(pids).toHaveLength(3);
        for (const pid of pids) expect(await alive(pid)).toBe(true);
        await cgroup.kill();
        for (const pid of pids) expect(await alive(pid)).toBe(false);
        await cgroup.remove();
        expect(existsSync(cgroup.dir)).toBe(false);
      });

      it('kill() ends a process forking without end', async () => {
        const { cgroup } = await runIn('echo ready; while :; do sleep 1000 & done');
        await cgroup.kill();
        expect(await readFile(cgroup.procsFile, 'utf8')).toBe('');
        await cgroup.remove();
        await cgroup.remove();
        expect(existsSync(cgroup.dir)).toBe(false);
      });
    },
  );
});
