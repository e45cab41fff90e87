import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { readStat, signalShellGroup } from './proc.js';

describe('signalShellGroup', () => {
  it('signals nothing when the leader pid names a process started at another time', async () => {
    // A pid reused by another process (its group too) must not get a job's stop.
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      const pid = child.pid as number;
      const stat = await readStat(pid);
      if (stat === undefined) throw new Error(`no /proc/${pid}/stat for the child just spawned`);
      const options = { isJobShell: () => true, endsJob: true, watchMs: 0 };
      expect(signalShellGroup(pid, 'SIGTERM', { ...options, startTime: stat.startTime + 1 })).toBe(
        false,
      );
      expect((await readStat(pid))?.state).not.toBe('Z');
      // With its own start time it is signalled.
      const sent = signalShellGroup(pid, 'SIGTERM', { ...options, startTime: stat.startTime });
      expect(sent).not.toBe(false);
      await sent;
      expect(await exited).toEqual([null, 'SIGTERM']);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
