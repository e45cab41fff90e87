import { describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import type { ExitStatus } from './driver.js';
import { describeExit, DriverJobTable, type DriverJobEntry } from './driver-job-table.js';
import { HostError, HostErrorCodes } from './errors.js';
import { LogBuffer } from './log-buffer.js';

interface FakeJob extends DriverJobEntry {
  /** Signals sent, in order. */
  readonly sent: NodeJS.Signals[];
}

/** A table over jobs that end on the signals in `deadly`, and fail to take `failing` ones. */
function setup(
  opts: { deadly?: NodeJS.Signals[]; failing?: NodeJS.Signals[]; graceMs?: number } = {},
) {
  const clock = new ManualClock(1000);
  const deadly = opts.deadly ?? ['SIGTERM', 'SIGKILL'];
  const table: DriverJobTable<FakeJob> = new DriverJobTable<FakeJob>({
    driver: 'fake',
    clock,
    checkSignal: (signal) => {
      if (signal !== 'SIGTERM' && signal !== 'SIGKILL' && signal !== 'SIGUSR1') {
        throw new HostError(HostErrorCodes.INVALID_OPTIONS, `${signal} is not sent`);
      }
    },
    send: async (job, signal) => {
      if (opts.failing?.includes(signal)) throw new Error('engine gone');
      if (job.exit !== undefined) return false;
      job.sent.push(signal);
      if (deadly.includes(signal)) {
        void table.ended(job, status(job, 'stopped', signal));
      }
      return true;
    },
    stopGraceMs: () => opts.graceMs ?? 100,
  });
  const add = (id: string): FakeJob => {
    const job = { ...DriverJobTable.entry(id, new LogBuffer(id, { clock })), sent: [] };
    table.set(job);
    return job;
  };
  return { clock, table, add };
}

function status(
  job: FakeJob,
  reason: 'exited' | 'stopped',
  signal: NodeJS.Signals | null,
  code: number | null = null,
): ExitStatus {
  return {
    code,
    signal,
    reason,
    finishedAt: 0,
    message: describeExit(job, reason, code, signal),
  };
}

describe('DriverJobTable', () => {
  it('names unknown ids, refuses a second start of an id, and lists only running jobs', async () => {
    const { table, add } = setup();
    expect(() => table.get('nope')).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_HOST_JOB_NOT_FOUND' }),
    );
    let release!: () => void;
    const first = table.reserve('a', async () => {
      await new Promise<void>((r) => (release = r));
      return add('a');
    });
    // a second start of the same id while the first one runs: refused, not started twice
    await expect(table.reserve('a', async () => add('a'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXISTS',
    });
    release();
    await first;
    await expect(table.reserve('a', async () => add('a'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXISTS',
    });
    const b = add('b');
    await table.ended(b, status(b, 'exited', null, 0));
    expect(table.running().map((j) => j.id)).toEqual(['a']);
  });

  it('stops with the signal, SIGKILL after the grace, one stop for all callers', async () => {
    const { clock, table, add } = setup({ deadly: ['SIGKILL'] });
    const job = add('stubborn');
    const one = table.stop('stubborn', { graceMs: 50 });
    const two = table.stop('stubborn');
    await clock.advance(49);
    expect(job.sent).toEqual(['SIGTERM']);
    await clock.advance(1);
    const s = await one;
    expect(await two).toBe(s);
    expect(job.sent).toEqual(['SIGTERM', 'SIGKILL']);
    expect(s.message).toBe(
      'stubborn was stopped: still running 50 ms after SIGTERM, killed by SIGKILL',
    );
    // the log ends with the exit line, and a stop of an ended job answers at once
    const lines = [];
    for await (const l of job.logs.read()) lines.push(l.line);
    expect(lines).toEqual([s.message]);
    expect(await table.stop('stubborn')).toBe(s);
  });

  it('refuses a bad grace or signal, and lets a later stop retry one whose signal failed', async () => {
    const failing: NodeJS.Signals[] = ['SIGTERM'];
    const { table, add } = setup({ failing });
    add('web.1');
    await expect(table.stop('web.1', { graceMs: -1 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(table.stop('web.1', { signal: 'SIGHUP' })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(table.stop('web.1')).rejects.toThrow('engine gone');
    expect(table.get('web.1').stopReason).toBeUndefined();
    failing.length = 0;
    expect(await table.stop('web.1')).toMatchObject({ reason: 'stopped', signal: 'SIGTERM' });
  });

  it('signals running jobs only, and removes ended ones only', async () => {
    const { table, add } = setup({ deadly: ['SIGTERM'] });
    const job = add('w');
    await table.signal('w', 'SIGUSR1');
    expect(job.sent).toEqual(['SIGUSR1']);
    await expect(table.remove('w', async () => undefined)).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_RUNNING',
    });
    await table.stop('w');
    await expect(table.signal('w', 'SIGUSR1')).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXITED',
    });
    // a discard that fails keeps the job, so that remove can be tried again
    await expect(
      table.remove('w', async () => {
        throw new Error('busy');
      }),
    ).rejects.toThrow('busy');
    expect(table.has('w')).toBe(true);
    await table.remove('w', async () => undefined);
    expect(table.has('w')).toBe(false);
  });

  it('ends a wait on abort and on close, and refuses calls once closed', async () => {
    const { table, add } = setup();
    add('w');
    const ac = new AbortController();
    const aborted = table.wait('w', { signal: ac.signal });
    ac.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    const pending = table.wait('w');
    pending.catch(() => undefined); // it fails while close() is awaited: handled at once
    const closed = table.close();
    expect(() => table.get('w')).toThrow(expect.objectContaining({ code: 'FLOTILLA_HOST_CLOSED' }));
    await closed;
    await expect(pending).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_CLOSED',
      message: 'the fake driver was closed while waiting',
    });
  });
});
