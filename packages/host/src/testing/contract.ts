import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import type { Driver, ExitStatus } from '../driver.js';
import { jobEnv, type JobSpec } from '../job-spec.js';
import type { LogLine } from '../log-buffer.js';

/** Options of {@link runDriverContract}. */
export interface DriverContractOptions {
  /** Suite name, e.g. `'ProcessDriver'`. */
  readonly name: string;
  /**
   * Makes a driver. `workDir` is a fresh directory per test, the same for every driver a test
   * makes: a driver that keeps state there finds it again when the suite makes a second driver
   * to stand for an agent restart. Drivers are closed by the suite.
   */
  readonly create: (workDir: string) => Driver | Promise<Driver>;
  /**
   * What a second driver does with the jobs of a closed first one: `'adopt'` (its `list()`
   * returns them, running, and it can stop them) or `'stop'` (they are gone, ports free).
   */
  readonly restart: 'adopt' | 'stop';
  /** The command that runs Node.js inside a job. Default `'node'`. */
  readonly node?: string;
  /** How long to wait for a job's line or exit before failing, ms. Default 10,000. */
  readonly timeoutMs?: number;
  /**
   * A free loopback port for a job to listen on. Default: the port the kernel gave a listener
   * on 127.0.0.1 a moment before, which is in the ephemeral range: an outgoing connection of
   * any process can take it before the job binds it. Suites run beside others should hand out
   * ports reserved for them, below that range.
   */
  readonly freePort?: () => Promise<number>;
}

/** Quotes a string for bash. */
function sh(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A port that was free a moment ago on 127.0.0.1. */
async function ephemeralPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Connects to 127.0.0.1:port and returns all it sends. */
async function fetchText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

async function expectCode(promise: Promise<unknown> | (() => unknown), code: string) {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(isFlotillaError(err), `expected ${code}, got ${String(err)}`).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected the call to fail with ${code}, but it succeeded`);
}

/**
 * The one suite every `Driver` runs: `ProcessDriver` here, `DockerDriver` in `@flotilla/docker`.
 * Call it inside a vitest test file. Jobs listen on 127.0.0.1 only; every job a test starts is
 * stopped and removed after it, also when it fails.
 *
 * @example
 * ```ts
 * import { runDriverContract } from '@flotilla/host/testing';
 * runDriverContract({
 *   name: 'ProcessDriver',
 *   create: (dir) => ProcessDriver.create({ stateDir: join(dir, 'state') }),
 *   restart: 'adopt',
 * });
 * ```
 */
export function runDriverContract(options: DriverContractOptions): void {
  const node = options.node ?? 'node';
  const timeoutMs = options.timeoutMs ?? 10_000;

  const freePort = options.freePort ?? ephemeralPort;
  describe(`Driver contract: ${options.name}`, () => {
    let workDir: string;
    let slugDir: string;
    let drivers: Driver[];
    let seq = 0;

    beforeEach(async () => {
      workDir = await mkdtemp(join(tmpdir(), 'flotilla-driver-'));
      slugDir = join(workDir, 'slug');
      await mkdir(join(slugDir, '.profile.d'), { recursive: true });
      await writeFile(join(slugDir, '.profile.d', 'a.sh'), 'export FROM_PROFILE_D=sourced\n');
      await writeFile(join(slugDir, '.profile'), 'export FROM_PROFILE="$FROM_PROFILE_D too"\n');
      drivers = [];
    });

    afterEach(async () => {
      for (const driver of drivers.reverse()) {
        try {
          for (const job of await driver.list()) await driver.stop(job.id, { graceMs: 0 });
        } catch {
          // a closed driver: its jobs were handed to the next one
        }
        await driver.close();
      }
      await rm(workDir, { recursive: true, force: true });
    });

    async function open(): Promise<Driver> {
      const driver = await options.create(workDir);
      drivers.push(driver);
      return driver;
    }

    function spec(
      command: string,
      extra: { port?: number; config?: Record<string, string> } & Partial<JobSpec> = {},
    ): JobSpec {
      const id = `contract.web.${++seq}`;
      const { port, config, ...rest } = extra;
      return {
        id,
        app: 'contract',
        release: 'v1',
        processType: 'web',
        index: seq,
        command,
        cwd: slugDir,
        env: jobEnv({
          jobId: id,
          app: 'contract',
          release: 'v1',
          processType: 'web',
          index: seq,
          ...(port === undefined ? {} : { port }),
          config: config ?? {},
        }),
        ...rest,
      };
    }

    /** `node -e <js>`, quoted for bash. */
    const js = (code: string): string => `${node} -e ${sh(code)}`;

    /** Follows a job's log until a line matches, failing after the timeout. */
    async function waitForLine(
      driver: Driver,
      id: string,
      match: (l: LogLine) => boolean,
    ): Promise<LogLine> {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      try {
        for await (const l of driver.logs(id, { follow: true, signal: ac.signal })) {
          if (match(l)) return l;
        }
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
      throw new Error(`job ${id} logged no matching line within ${timeoutMs} ms (or ended)`);
    }

    async function waitExit(driver: Driver, id: string): Promise<ExitStatus> {
      return driver.wait(id, { signal: AbortSignal.timeout(timeoutMs) });
    }

    const HELLO = `
      const net = require('net');
      const server = net.createServer((c) => c.end(JSON.stringify({
        port: process.env.PORT, dyno: process.env.DYNO, greeting: process.env.GREETING,
        job: process.env.FLOTILLA_JOB_ID, app: process.env.FLOTILLA_APP,
        release: process.env.FLOTILLA_RELEASE })));
      server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
      process.on('SIGTERM', () => { console.log('bye'); server.close(); process.exit(0); });`;

    it('starts a job that listens on its PORT and sees its environment', async () => {
      const driver = await open();
      const port = await freePort();
      const s = spec(js(HELLO), { port, config: { GREETING: 'hello there' } });
      const started = await driver.start(s);
      expect(started).toMatchObject({ id: s.id, state: 'running', app: 'contract', port });
      await waitForLine(driver, s.id, (l) => l.line === 'listening');
      expect(JSON.parse(await fetchText(port))).toEqual({
        port: String(port),
        dyno: `web.${s.index}`,
        greeting: 'hello there',
        job: s.id,
        app: 'contract',
        release: 'v1',
      });
      const info = await driver.inspect(s.id);
      expect(info.state).toBe('running');
      expect(info.startedAt).toBeGreaterThan(0);
      expect((await driver.list()).map((j) => j.id)).toEqual([s.id]);
      const status = await driver.stop(s.id, { graceMs: 5000 });
      expect(status).toMatchObject({ code: 0, signal: null, reason: 'stopped' });
      expect(await portOpen(port)).toBe(false);
    });

    it('runs the command with bash after sourcing .profile.d/*.sh and .profile', async () => {
      const driver = await open();
      const port = await freePort();
      const s = spec(
        `echo "port=$PORT" && echo "$FROM_PROFILE_D / $FROM_PROFILE" && for i in 1 2; do echo "n$i"; done; exit 0`,
        { port },
      );
      await driver.start(s);
      expect(await waitExit(driver, s.id)).toMatchObject({ code: 0, reason: 'exited' });
      const lines = [];
      for await (const l of driver.logs(s.id)) if (l.stream === 'stdout') lines.push(l.line);
      expect(lines).toEqual([`port=${port}`, 'sourced / sourced too', 'n1', 'n2']);
    });

    it('keeps stdout and stderr apart, in order, with tail and follow', async () => {
      const driver = await open();
      const s = spec(
        js(`
          process.on('SIGUSR2', () => { console.log('got usr2'); process.exit(4); });
          for (let i = 0; i < 50; i++) { console.log('out ' + i); console.error('err ' + i); }
          console.log('ready'); console.error('ready too');
          setInterval(() => {}, 1000);`),
      );
      await driver.start(s);
      // the streams are read apart: each is in order, but one may be read ahead of the other
      await waitForLine(driver, s.id, (l) => l.line === 'ready');
      await waitForLine(driver, s.id, (l) => l.line === 'ready too');
      const all = [];
      for await (const l of driver.logs(s.id)) all.push(l);
      const out = all.filter((l) => l.stream === 'stdout').map((l) => l.line);
      const err = all.filter((l) => l.stream === 'stderr').map((l) => l.line);
      expect(out).toEqual([...Array.from({ length: 50 }, (_, i) => `out ${i}`), 'ready']);
      expect(err).toEqual([...Array.from({ length: 50 }, (_, i) => `err ${i}`), 'ready too']);
      expect(all.every((l) => l.jobId === s.id && l.time > 0)).toBe(true);
      expect(all.map((l) => l.seq)).toEqual([...all.map((l) => l.seq)].sort((a, b) => a - b));

      const tail = [];
      for await (const l of driver.logs(s.id, { tail: 2 })) tail.push(l.line);
      expect(tail).toHaveLength(2);
      expect(tail).toEqual(all.slice(-2).map((l) => l.line));

      // follow from now: the next line comes from the signal, then the log ends with the job
      const followed: LogLine[] = [];
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      const following = (async () => {
        for await (const l of driver.logs(s.id, { tail: 0, follow: true, signal: ac.signal })) {
          followed.push(l);
        }
      })();
      await driver.signal(s.id, 'SIGUSR2');
      await following;
      clearTimeout(timer);
      expect(ac.signal.aborted).toBe(false);
      expect(followed[0]).toMatchObject({ line: 'got usr2', stream: 'stdout' });
      expect(followed.at(-1)?.stream).toBe('system');
      expect(await driver.wait(s.id)).toMatchObject({ code: 4, reason: 'exited' });
    });

    it("reads all of a fast job's output with fromStart, in order, though its ring keeps 1500 lines", async () => {
      const driver = await open();
      const s = spec('seq 1 100000; echo done >&2');
      await driver.start(s);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs * 3);
      const out: string[] = [];
      const other: LogLine[] = [];
      try {
        for await (const l of driver.logs(s.id, {
          fromStart: true,
          follow: true,
          signal: ac.signal,
        })) {
          if (l.stream === 'stdout') out.push(l.line);
          else other.push(l);
        }
      } finally {
        clearTimeout(timer);
      }
      expect(ac.signal.aborted).toBe(false);
      expect(out.length).toBe(100_000);
      expect(out.every((line, i) => line === String(i + 1))).toBe(true);
      expect(other.filter((l) => l.stream === 'stderr').map((l) => l.line)).toEqual(['done']);
      // the driver's exit message comes after the output
      expect(other.at(-1)).toMatchObject({ stream: 'system' });
      expect(other.at(-1)?.line).toMatch(/exited with code 0/);
      const kept = [];
      for await (const l of driver.logs(s.id)) kept.push(l);
      expect(kept.length).toBeLessThan(100_000);
    });

    it('paces a fromStart read by its consumer: one that waits loses nothing', async () => {
      const driver = await open();
      const s = spec('seq 1 20000');
      await driver.start(s);
      const it = driver.logs(s.id, { fromStart: true, follow: true })[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value).toMatchObject({ line: '1', stream: 'stdout' });
      await waitExit(driver, s.id); // the job ends while the reader waits
      const out = [first.value.line as string];
      for (let r = await it.next(); r.done !== true; r = await it.next())
        if (r.value.stream === 'stdout') out.push(r.value.line);
      expect(out).toEqual(Array.from({ length: 20_000 }, (_, i) => String(i + 1)));
      // without follow, an ended job's read ends too, from its first line
      const again = [];
      for await (const l of driver.logs(s.id, { fromStart: true })) again.push(l);
      expect(again.filter((l) => l.stream === 'stdout').length).toBe(20_000);
      expect(() => driver.logs(s.id, { fromStart: true, tail: 5 })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
      );
    });

    it('ends a fromStart follow quietly when its signal aborts while the job runs on', async () => {
      const driver = await open();
      const s = spec('seq 1 5000; exec sleep 60');
      await driver.start(s);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error('timed out')), timeoutMs);
      const got: string[] = [];
      try {
        for await (const l of driver.logs(s.id, {
          fromStart: true,
          follow: true,
          signal: ac.signal,
        })) {
          if (l.stream === 'stdout') got.push(l.line);
          if (l.line === '5000') ac.abort();
        }
      } finally {
        clearTimeout(timer);
      }
      expect(got).toEqual(Array.from({ length: 5000 }, (_, i) => String(i + 1)));
      expect((await driver.inspect(s.id)).state).toBe('running');
    });

    it('ends a follow when its signal aborts', async () => {
      const driver = await open();
      const s = spec(js(`console.log('up'); setInterval(() => {}, 1000);`));
      await driver.start(s);
      await waitForLine(driver, s.id, (l) => l.line === 'up');
      const ac = new AbortController();
      const seen: string[] = [];
      const following = (async () => {
        for await (const l of driver.logs(s.id, { follow: true, signal: ac.signal })) {
          seen.push(l.line);
          if (l.line === 'up') ac.abort();
        }
      })();
      await following;
      expect(seen).toEqual(['up']);
      expect((await driver.inspect(s.id)).state).toBe('running');
    });

    it('stops with SIGTERM: a job that exits on it reports its own exit code', async () => {
      const driver = await open();
      const s = spec(
        js(`process.on('SIGTERM', () => { console.log('term'); process.exit(0); });
            console.log('up'); setInterval(() => {}, 1000);`),
      );
      await driver.start(s);
      await waitForLine(driver, s.id, (l) => l.line === 'up');
      const status = await driver.stop(s.id, { graceMs: timeoutMs });
      expect(status).toMatchObject({ code: 0, signal: null, reason: 'stopped' });
      const lines = [];
      for await (const l of driver.logs(s.id)) lines.push(l.line);
      expect(lines).toContain('term');
      expect((await driver.inspect(s.id)).state).toBe('exited');
      expect(await driver.stop(s.id)).toEqual(status);
    });

    it('stops with SIGKILL after the grace period a job that ignores SIGTERM', async () => {
      const driver = await open();
      const s = spec(
        js(`process.on('SIGTERM', () => console.log('ignored'));
            console.log('up'); setInterval(() => {}, 1000);`),
      );
      await driver.start(s);
      await waitForLine(driver, s.id, (l) => l.line === 'up');
      const graceMs = 300;
      const t0 = performance.now();
      const status = await driver.stop(s.id, { graceMs });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(graceMs - 20);
      expect(status).toMatchObject({ code: null, signal: 'SIGKILL', reason: 'stopped' });
      await waitForLine(driver, s.id, (l) => l.line === 'ignored');
    });

    it('kills the children of a job with it', async () => {
      const driver = await open();
      // a child that listens on a port of its own: when it is gone, so is the port (a pid
      // would not do: a driver may run jobs in a PID namespace of their own)
      const childPort = await freePort();
      const s = spec(
        js(`const c = require('child_process').spawn(process.execPath, ['-e',
              "require('net').createServer().listen(${childPort}, '127.0.0.1', () => console.log('child up'))"],
              { stdio: 'inherit' });
            setInterval(() => {}, 1000);`),
      );
      await driver.start(s);
      await waitForLine(driver, s.id, (l) => l.line === 'child up');
      expect(await portOpen(childPort)).toBe(true);
      await driver.stop(s.id, { graceMs: timeoutMs });
      expect(await portOpen(childPort)).toBe(false);
    });

    it('reports exit codes and signals of commands that end by themselves', async () => {
      const driver = await open();
      const crash = spec(js(`console.error('boom'); process.exit(3);`));
      const killed = spec(js(`process.kill(process.pid, 'SIGKILL');`));
      await driver.start(crash);
      await driver.start(killed);
      expect(await waitExit(driver, crash.id)).toMatchObject({ code: 3, reason: 'exited' });
      expect(await waitExit(driver, killed.id)).toMatchObject({
        code: null,
        signal: 'SIGKILL',
        reason: 'exited',
      });
      const info = await driver.inspect(crash.id);
      expect(info.state).toBe('exited');
      expect(info.exit?.finishedAt).toBeGreaterThanOrEqual(info.startedAt);
      expect(await driver.list()).toEqual([]);
      await expectCode(driver.signal(crash.id, 'SIGTERM'), 'FLOTILLA_HOST_JOB_EXITED');
      await driver.remove(crash.id);
      await expectCode(driver.inspect(crash.id), 'FLOTILLA_HOST_JOB_NOT_FOUND');
    });

    it('keeps a last line written without a newline before the exit line', async () => {
      const driver = await open();
      const s = spec(`printf 'last words'; printf 'on stderr' >&2; exit 3`);
      await driver.start(s);
      expect(await waitExit(driver, s.id)).toMatchObject({ code: 3, reason: 'exited' });
      const all: string[] = [];
      const text = new Map<string, string>();
      for await (const l of driver.logs(s.id)) {
        all.push(l.stream);
        text.set(l.stream, l.line);
      }
      expect(all.at(-1)).toBe('system');
      expect(text.get('stdout')).toBe('last words');
      expect(text.get('stderr')).toBe('on stderr');
    });

    it('refuses bad specs, duplicate ids and removing a running job', async () => {
      const driver = await open();
      await expectCode(driver.start({ ...spec('true'), id: 'a/b' }), 'FLOTILLA_HOST_INVALID_SPEC');
      await expectCode(
        driver.start({ ...spec('true'), cwd: 'relative' }),
        'FLOTILLA_HOST_INVALID_SPEC',
      );
      await expectCode(
        driver.start({ ...spec('true'), cwd: join(workDir, 'missing') }),
        'FLOTILLA_HOST_START_FAILED',
      );
      const s = spec(js(`console.log('up'); setInterval(() => {}, 1000);`));
      await driver.start(s);
      await expectCode(driver.start(s), 'FLOTILLA_HOST_JOB_EXISTS');
      await expectCode(driver.remove(s.id), 'FLOTILLA_HOST_JOB_RUNNING');
      await expectCode(driver.inspect('nope'), 'FLOTILLA_HOST_JOB_NOT_FOUND');
      expect((await driver.list()).map((j) => j.id)).toEqual([s.id]);
    });

    it(`after a restart, ${options.restart === 'adopt' ? 'adopts running jobs and learns how the others ended' : 'leaves no job of the old driver running'}`, async () => {
      const first = await open();
      const port = await freePort();
      const web = spec(js(HELLO), { port });
      const exiting = spec(
        js(`process.stdin.resume(); console.log('up');
            require('net').createServer(() => process.exit(7))
              .listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));`),
        { port: await freePort() },
      );
      const exitingPort = Number(exiting.env.PORT);
      await first.start(web);
      await first.start(exiting);
      await waitForLine(first, web.id, (l) => l.line === 'listening');
      await waitForLine(first, exiting.id, (l) => l.line === 'listening');
      await first.close();
      await expectCode(() => first.list(), 'FLOTILLA_HOST_CLOSED');

      // while no driver watches, one job exits by itself
      await fetchText(exitingPort).catch(() => '');
      const second = await open();
      if (options.restart === 'stop') {
        expect(await second.list()).toEqual([]);
        expect(await portOpen(port)).toBe(false);
        return;
      }
      const running = await second.list();
      expect(running.map((j) => j.id)).toContain(web.id);
      expect(running.find((j) => j.id === web.id)).toMatchObject({ adopted: true, port });
      expect(JSON.parse(await fetchText(port))).toMatchObject({ port: String(port) });
      const old = [];
      for await (const l of second.logs(web.id)) old.push(l.line);
      expect(old).toContain('listening');

      expect(await waitExit(second, exiting.id)).toMatchObject({ code: 7, reason: 'exited' });
      expect((await second.list()).map((j) => j.id)).toEqual([web.id]);

      const status = await second.stop(web.id, { graceMs: timeoutMs });
      expect(status).toMatchObject({ code: 0, reason: 'stopped' });
      expect(await portOpen(port)).toBe(false);
      expect(await second.list()).toEqual([]);
    });
  });
}
