import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import { hasStats } from './driver.js';
import { jobEnv, type JobSpec } from './job-spec.js';
import { ProcessDriver, type ProcessDriverOptions } from './process-driver.js';
import { readStat } from './internal/proc.js';
import { runDriverContract } from './testing/contract.js';
import { claimPortRange } from '../../../test/support/port-slots.js';

runDriverContract({
  name: 'ProcessDriver',
  create: (dir) =>
    ProcessDriver.create({
      stateDir: join(dir, 'state'),
      sampleIntervalMs: 50,
      logPollMs: 50,
    }),
  restart: 'adopt',
  node: process.execPath,
  // Reserved below the ephemeral range: see DriverContractOptions.freePort.
  freePort: async () => (await claimPortRange(1)).from,
});

describe('ProcessDriver', () => {
  let dir: string;
  let slug: string;
  const open: ProcessDriver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-process-driver-'));
    slug = join(dir, 'slug');
    await mkdir(slug);
  });

  afterEach(async () => {
    for (const d of open.splice(0).reverse()) {
      try {
        for (const job of await d.list()) await d.stop(job.id, { graceMs: 0 });
      } catch {
        // closed: handed on
      }
      await d.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function create(options: Partial<ProcessDriverOptions> = {}): Promise<ProcessDriver> {
    const d = await ProcessDriver.create({
      stateDir: join(dir, 'state'),
      logPollMs: 50,
      ...options,
    });
    open.push(d);
    return d;
  }

  function spec(id: string, command: string, extra: Partial<JobSpec> = {}): JobSpec {
    return {
      id,
      app: 'demo',
      release: 'v1',
      processType: 'web',
      index: 1,
      command,
      cwd: slug,
      env: jobEnv({ jobId: id, app: 'demo', release: 'v1', processType: 'web', index: 1 }),
      ...extra,
    };
  }

  it('removes a job read to its end at once, leaving no directory behind (no stray exit.json)', async () => {
    const d = await create();
    for (let i = 0; i < 5; i++) {
      const id = `demo.run.${i}`;
      await d.start(spec(id, 'echo hi'));
      const lines = [];
      // the ring's follow ends with the job's log, before its exit is written
      for await (const l of d.logs(id, { follow: true })) lines.push(l.line);
      expect(lines[0]).toBe('hi');
      await d.remove(id);
      await expect(readFile(join(dir, 'state', 'jobs', id, 'exit.json'))).rejects.toMatchObject({
        code: 'ENOENT',
      });
    }
  });

  it('tells a fromStart reader that waits, once per cut, how many bytes its capped file lost', async () => {
    const d = await create({ maxLogFileBytes: 4096 });
    await d.start(spec('demo.fast.1', 'echo 1; sleep 0.3; seq 2 20000'));
    const it = d.logs('demo.fast.1', { fromStart: true, follow: true })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value).toMatchObject({ line: '1', stream: 'stdout' });
    await d.wait('demo.fast.1');
    const out: number[] = [];
    const lost: string[] = [];
    for (let r = await it.next(); r.done !== true; r = await it.next()) {
      if (r.value.stream === 'stdout') out.push(Number(r.value.line));
      else if (/bytes of stdout were lost/.test(r.value.line)) lost.push(r.value.line);
    }
    expect(lost.length).toBeGreaterThan(0);
    const bytes = lost.reduce((n, l) => n + Number(/\((\d+) bytes/.exec(l)?.[1]), 0);
    expect(bytes).toBeGreaterThan(0);
    // what is left is in order; the file stayed bounded
    expect(out.every((n, i) => i === 0 || n > (out[i - 1] as number) || Number.isNaN(n))).toBe(
      true,
    );
    expect(out.length).toBeLessThan(20000);
    // a read begun after the cuts is told of them first
    const again = [];
    for await (const l of d.logs('demo.fast.1', { fromStart: true })) again.push(l);
    expect(again[0]).toMatchObject({ stream: 'system' });
    expect(again[0]?.line).toMatch(/^\(\d+ bytes of stdout were lost/);
    expect(again.filter((l) => /were lost/.test(l.line))).toHaveLength(1);
    expect(again.filter((l) => /dropped unread/.test(l.line))).toHaveLength(0);
  });

  it('fromStart without follow ends at what was written when it began, though the job writes on', async () => {
    const d = await create();
    await d.start(spec('demo.chatty.1', 'echo first; while :; do echo more; done'));
    await line(d, 'demo.chatty.1', 'more');
    const got = [];
    for await (const l of d.logs('demo.chatty.1', { fromStart: true })) got.push(l.line);
    expect(got[0]).toBe('first');
    expect(got.slice(1).every((l) => l === 'more')).toBe(true);
    await d.stop('demo.chatty.1', { graceMs: 0 });
  });

  it('fromStart gives NUL bytes and bad UTF-8 as the ring does, to two readers at once, and ends quietly on abort', async () => {
    const d = await create();
    await d.start(spec('demo.odd.1', "printf 'a\\0b\\377c\\n'; seq 1 5000; sleep 60"));
    await line(d, 'demo.odd.1', '5000');
    const read = async (): Promise<string[]> => {
      const ac = new AbortController();
      const out: string[] = [];
      for await (const l of d.logs('demo.odd.1', {
        fromStart: true,
        follow: true,
        signal: ac.signal,
      })) {
        out.push(l.line);
        if (l.line === '5000') ac.abort(); // the job runs on: only the abort ends this read
      }
      return out;
    };
    const [a, b] = await Promise.all([read(), read()]);
    expect(a[0]).toBe('a\u0000b\ufffdc');
    expect(a.slice(1)).toEqual(Array.from({ length: 5000 }, (_, i) => String(i + 1)));
    expect(b).toEqual(a);
    await d.stop('demo.odd.1', { graceMs: 0 });
  });

  async function line(d: ProcessDriver, id: string, text: string): Promise<void> {
    for await (const l of d.logs(id, { follow: true, signal: AbortSignal.timeout(10_000) })) {
      if (l.line.includes(text)) return;
    }
    throw new Error(`no line ${text}`);
  }

  it('kills a job over its memory limit after R14 warnings (R15), on its clock', async () => {
    const clock = new ManualClock(Date.now());
    const d = await create({
      clock,
      sampleIntervalMs: 1000,
      memoryGraceSamples: 2,
      memoryHardFactor: 100,
    });
    const node = process.execPath;
    await d.start(
      spec(
        'hog',
        `${node} -e "globalThis.k = Buffer.alloc(64 * 1024 * 1024, 1); console.log('full'); setInterval(() => {}, 1000)"`,
        {
          memoryMiB: 16,
        },
      ),
    );
    await line(d, 'hog', 'full');
    expect(hasStats(d)).toBe(true);
    expect((await d.stats('hog')).memoryBytes).toBeGreaterThan(16 * 1024 * 1024);
    const sampled = (): Promise<void> => new Promise((r) => d.once('sampled', () => r()));
    let s = sampled();
    await clock.advance(1000);
    await s;
    await line(d, 'hog', 'Error R14 (Memory quota exceeded)');
    expect((await d.inspect('hog')).state).toBe('running');
    s = sampled();
    await clock.advance(1000);
    await s;
    const status = await d.wait('hog');
    expect(status).toMatchObject({ reason: 'memory', signal: 'SIGKILL', code: null });
    expect(status.message).toMatch(/R15/);
    const system = [];
    for await (const l of d.logs('hog')) if (l.stream === 'system') system.push(l.line);
    expect(system).toHaveLength(3); // R14 once, R15, the exit
  });

  it("kills what left the job's process group (setsid) but still writes its output, on stop and on exit; a reader of the output lives on", async () => {
    const d = await create();
    const escapee = (id: string): Promise<number> =>
      new Promise((resolve, reject) => {
        void (async () => {
          for await (const l of d.logs(id, { follow: true, signal: AbortSignal.timeout(10_000) })) {
            const m = /^escapee (\d+)$/.exec(l.line);
            if (m !== null) return resolve(Number(m[1]));
          }
          reject(new Error('no escapee line'));
        })().catch(reject);
      });
    const alive = async (pid: number): Promise<boolean> => {
      const st = await readStat(pid);
      return st !== undefined && st.state !== 'Z';
    };
    const daemon = `setsid sh -c 'echo "escapee $$"; exec sleep 1000' &`;

    const stopped = spec('esc.1', `${daemon} sleep 1000`);
    await d.start(stopped);
    const first = await escapee(stopped.id);
    expect((await readStat(first))?.pgrp).toBe(first); // its own group: the group kill misses it
    const reader = spawn('tail', ['-f', join(dir, 'state', 'jobs', stopped.id, 'stdout.log')], {
      stdio: 'ignore',
    });
    try {
      await d.stop(stopped.id, { graceMs: 1000 });
      expect(await alive(first)).toBe(false);
      expect(reader.exitCode).toBe(null);
      expect(reader.killed).toBe(false);
      expect(await alive(reader.pid as number)).toBe(true);
    } finally {
      reader.kill('SIGKILL');
    }

    const exiting = spec('esc.2', `${daemon} sleep 0.2; exit 3`);
    await d.start(exiting);
    const second = await escapee(exiting.id);
    expect(await d.wait(exiting.id)).toMatchObject({ code: 3 });
    expect(await alive(second)).toBe(false);
  });

  it('refuses a spec the kernel would refuse to exec (E2BIG) with INVALID_SPEC naming the field', async () => {
    const d = await create();
    const refused = async (s: JobSpec, path: string): Promise<void> => {
      const err = await d.start(s).then(
        () => undefined,
        (e: unknown) => e as { code?: string; path?: string; message?: string },
      );
      expect(err).toMatchObject({ code: 'FLOTILLA_HOST_INVALID_SPEC', path });
    };
    const env = (config: Record<string, string>): Record<string, string> =>
      jobEnv({ jobId: 'big', app: 'demo', release: 'v1', processType: 'web', index: 1, config });
    // one variable over the kernel's 128 KiB per string, though the whole env is under 1 MiB
    await refused(spec('big', 'true', { env: env({ BIG: 'x'.repeat(200_000) }) }), 'spec.env.BIG');
    // under 1 MiB in characters, over it in bytes
    const wide = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`V${i}`, '\u{1F600}'.repeat(30_000)]),
    );
    await refused(spec('big', 'true', { env: env(wide) }), 'spec.env');
    // 64 Ki characters, but 4 bytes each
    await refused(spec('big', `echo ${'\u{1F600}'.repeat(40_000)}`), 'spec.command');
    expect(await d.list()).toEqual([]);
    // just under every limit: it runs
    const ok = spec('ok', 'echo ${#BIG}', { env: env({ BIG: 'x'.repeat(120_000) }) });
    await d.start(ok);
    expect(await d.wait(ok.id)).toMatchObject({ code: 0 });
  });

  it('leaves a job under its limit alone', async () => {
    const clock = new ManualClock(Date.now());
    const d = await create({ clock, sampleIntervalMs: 1000, memoryGraceSamples: 1 });
    await d.start(spec('small', `echo up; exec sleep 1000`, { memoryMiB: 512 }));
    await line(d, 'small', 'up');
    for (let i = 0; i < 3; i++) {
      const s = new Promise<void>((r) => d.once('sampled', () => r()));
      await clock.advance(1000);
      await s;
    }
    expect((await d.inspect('small')).state).toBe('running');
  });

  it('refuses a second live driver on one state directory, and takes over after close', async () => {
    const first = await create();
    await expect(create()).rejects.toMatchObject({ code: 'FLOTILLA_HOST_STATE_DIR_IN_USE' });
    await first.close();
    await create();
  });

  it('reports a job record it cannot read back, and leaves it in place', async () => {
    const jobs = join(dir, 'state', 'jobs', 'broken');
    await mkdir(jobs, { recursive: true });
    await writeFile(join(jobs, 'job.json'), '{"id":"broken","pid":');
    const d = await create();
    expect(d.adoptionErrors.map((e) => e.code)).toEqual(['FLOTILLA_HOST_STATE_RECORD']);
    await expect(d.inspect('broken')).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_NOT_FOUND',
    });
    await expect(d.start(spec('broken', 'true'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXISTS',
    });
  });

  it('does not adopt nor signal a process that reused a job pid', async () => {
    const first = await create();
    await first.start(spec('reused', 'echo up; exec sleep 1000'));
    await line(first, 'reused', 'up');
    const record = join(dir, 'state', 'jobs', 'reused', 'job.json');
    const saved = await readFile(record, 'utf8');
    const real = JSON.parse(saved) as { pid: number };
    // Pretend the job's pid now names another process: this test's own (same pid, other start).
    await writeFile(record, JSON.stringify({ ...real, pid: process.pid }));
    await first.close();
    const second = await create();
    try {
      expect(await second.list()).toEqual([]);
      expect((await second.inspect('reused')).exit).toMatchObject({ reason: 'lost' });
    } finally {
      // the real job, still writing its output, was killed as a leftover of the lost job
      try {
        process.kill(-real.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });

  it('close lets a stop in flight finish and ends pending waits', async () => {
    const d = await create();
    await d.start(
      spec('slow', `trap 'sleep 0.2; exit 0' TERM; echo up; while :; do sleep 0.05; done`),
    );
    await d.start(spec('other', 'echo up; exec sleep 1000'));
    await line(d, 'slow', 'up');
    await line(d, 'other', 'up');
    const waiting = d.wait('other').catch((err: unknown) => err);
    const stopping = d.stop('slow', { graceMs: 10_000 });
    await d.close();
    expect(await stopping).toMatchObject({ reason: 'stopped', code: 0 });
    expect(await waiting).toMatchObject({ code: 'FLOTILLA_HOST_CLOSED' });
    const next = await create();
    expect((await next.list()).map((j) => j.id)).toEqual(['other']);
  });

  it('keeps the output file of a job that prints 400 MB without a newline far below that', async () => {
    const d = await create({ maxLogFileBytes: 1024 * 1024 });
    // The job measures its own stdout file (fd 1) as it writes, and writes down its peak.
    const flood = `${process.execPath} -e "
      const fs = require('fs'); const chunk = Buffer.alloc(1 << 20, 97); let peak = 0;
      for (let i = 0; i < 400; i++) { fs.writeSync(1, chunk); peak = Math.max(peak, fs.fstatSync(1).size); }
      fs.writeSync(1, '\\ndone\\n'); fs.writeFileSync('peak', String(peak));"`;
    await d.start(spec('flood', flood));
    expect(await d.wait('flood')).toMatchObject({ reason: 'exited', code: 0 });
    const lines = [];
    for await (const l of d.logs('flood')) lines.push(l);
    const peak = Number(await readFile(join(slug, 'peak'), 'utf8'));
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(200 * 1024 * 1024); // it grew with the output, towards 400 MB
    expect(lines.every((l) => Buffer.byteLength(l.line) <= 16 * 1024)).toBe(true);
  });

  it('kills what a job left running in the background when it exits (a daemon in its group)', async () => {
    const d = await create();
    await d.start(
      spec('daemon', '(sleep 1000 & echo daemon $!); sleep 1000 & echo child $!; exit 0'),
    );
    expect(await d.wait('daemon')).toMatchObject({ reason: 'exited', code: 0 });
    const pids = [];
    for await (const l of d.logs('daemon')) {
      const m = /^(daemon|child) (\d+)$/.exec(l.line);
      if (m !== null) pids.push(Number(m[2]));
    }
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect((await readStat(pid))?.state ?? 'gone').toMatch(/^(gone|Z)$/);
  });

  it('a stop right after start reaches the command, also while the job script is forking it', async () => {
    // Between the shell's fork and its exec of the command, a group signal is caught by the
    // shell's handler and lost at the exec: 1 stop in 30 then waited out the whole grace and
    // ended by SIGKILL. Starts stopped within 0-2 ms, four at a time, hit that window.
    const d = await create();
    const ends: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = w; i < 160; i += 4) {
          const id = `demo.web.${i}`;
          await d.start(spec(id, 'sleep 30'));
          if (i % 3 > 0) await new Promise((r) => setTimeout(r, i % 3));
          const status = await d.stop(id, { graceMs: 5_000 });
          ends.push(status.signal ?? `code ${status.code}`);
          await d.remove(id);
        }
      }),
    );
    expect(ends.filter((e) => e !== 'SIGTERM')).toEqual([]);
  }, 60_000);

  it('a signal reaches the processes the job had when it was sent, not a command its shell starts after', async () => {
    // The re-send above watches the shell's children: a command the shell starts once the
    // first one has handled USR2 must not get it (a re-send to every later child did).
    const d = await create();
    await d.start(
      spec(
        'seq',
        `sh -c 'trap "echo first got USR2" USR2; echo first ready; sleep 2 & wait'; ` +
          `sh -c 'trap "echo second got USR2" USR2; sleep 0.3 & wait'; echo "second status $?"; ` +
          'exec sleep 1000',
      ),
    );
    const lines: string[] = [];
    for await (const l of d.logs('seq', { follow: true })) {
      lines.push(l.line);
      if (l.line === 'first ready') await d.signal('seq', 'SIGUSR2');
      if (l.line.startsWith('second status')) break;
    }
    expect(lines).toEqual(['first ready', 'first got USR2', 'second status 0']);
  });

  it('a stop while the profile scripts run ends the job by SIGTERM before its command runs', async () => {
    // The profile busy in shell builtins: the signal ends it between two of them. The job used
    // to end with the last builtin's status (code 0), as if its command had run and succeeded.
    await mkdir(join(slug, '.profile.d'));
    await writeFile(
      join(slug, '.profile.d', 'slow.sh'),
      'echo profile; i=0; while [ $i -lt 5000000 ]; do i=$((i+1)); done\n',
    );
    const d = await create();
    await d.start(spec('slow-profile', 'echo command ran'));
    for await (const l of d.logs('slow-profile', { follow: true })) if (l.line === 'profile') break;
    expect(await d.stop('slow-profile', { graceMs: 5_000 })).toMatchObject({
      signal: 'SIGTERM',
      code: null,
    });
    const lines = [];
    for await (const l of d.logs('slow-profile')) lines.push(l.line);
    expect(lines).toContain('profile');
    expect(lines).not.toContain('command ran');
  });

  it('refuses bad options and signals with coded errors', async () => {
    await expect(create({ sampleIntervalMs: 0 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    const d = await create();
    await d.start(spec('sig', 'echo up; exec sleep 1000'));
    await expect(d.signal('sig', 'SIGNOPE' as NodeJS.Signals)).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(d.stop('sig', { graceMs: -1 })).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
    await expect(
      d.start({ ...spec('env', 'true'), env: { 'BAD-NAME': 'x' } }),
    ).rejects.toMatchObject({ code: 'FLOTILLA_HOST_INVALID_SPEC' });
  });
});
