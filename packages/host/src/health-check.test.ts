import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Logger, ManualClock } from '@flotilla/core';
import { HostErrorCodes } from './errors.js';
import {
  HEALTH_CHECK_DEFAULTS,
  HealthMonitor,
  probe,
  type ProbeResult,
  type ResolvedHealthCheck,
  resolveHealthCheck,
} from './health-check.js';

const servers: Server[] = [];
const monitors: HealthMonitor[] = [];

afterEach(async () => {
  for (const m of monitors.splice(0)) m.stop();
  for (const s of servers.splice(0)) {
    if ('closeAllConnections' in s)
      (s as { closeAllConnections: () => void }).closeAllConnections();
    if (s.listening) await new Promise((resolve) => s.close(resolve));
  }
});

async function listen(s: Server): Promise<number> {
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as AddressInfo).port;
}

/** A tcp server that accepts and drops connections; `sockets` records them. */
async function tcpServer(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createTcpServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.end();
  });
  return { server, port: await listen(server), sockets };
}

function httpServer(handler: RequestListener): Promise<number> {
  return listen(createHttpServer(handler));
}

/** A port nothing listens on: one a server held and gave back. */
async function closedPort(): Promise<number> {
  const s = createTcpServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

function resolved(check: Parameters<typeof resolveHealthCheck>[1]): ResolvedHealthCheck {
  const r = resolveHealthCheck('web', check);
  if (r === undefined) throw new Error('web always has a check');
  return r;
}

function tcp(extra: Partial<ResolvedHealthCheck> = {}): ResolvedHealthCheck {
  return { ...resolved(undefined), ...extra };
}

function http(path: string, status?: number, timeoutMs = 1000): ResolvedHealthCheck {
  return resolved({ type: 'http', path, timeoutMs, ...(status !== undefined && { status }) });
}

describe('resolveHealthCheck', () => {
  it('gives web a tcp check and other types none', () => {
    expect(resolveHealthCheck('web', undefined)).toEqual({
      type: 'tcp',
      path: '/',
      status: undefined,
      ...HEALTH_CHECK_DEFAULTS,
    });
    expect(resolveHealthCheck('worker', undefined)).toBeUndefined();
  });

  it("keeps a release's http path, status and timings, defaulting the rest", () => {
    expect(
      resolveHealthCheck('worker', { type: 'http', path: '/healthz', status: 204, threshold: 5 }),
    ).toEqual({
      type: 'http',
      path: '/healthz',
      status: 204,
      intervalMs: HEALTH_CHECK_DEFAULTS.intervalMs,
      timeoutMs: HEALTH_CHECK_DEFAULTS.timeoutMs,
      threshold: 5,
      graceMs: HEALTH_CHECK_DEFAULTS.graceMs,
    });
    expect(resolveHealthCheck('web', { type: 'http', path: '/up' })?.status).toBeUndefined();
  });
});

describe('probe', () => {
  it('tcp: passes on a listening port, fails on a closed one', async () => {
    const { port } = await tcpServer();
    expect((await probe(tcp(), port)).ok).toBe(true);
    const closed = await probe(tcp(), await closedPort());
    expect(closed).toEqual({ ok: false, message: expect.stringMatching(/nothing listens/) });
  });

  it('http: any 2xx or 3xx passes by default, an expected status must match exactly', async () => {
    const port = await httpServer((req, res) => {
      const status = Number(req.url?.slice(1));
      res.writeHead(status, status >= 300 && status < 400 ? { location: '/' } : {}).end();
    });
    expect((await probe(http('/200'), port)).ok).toBe(true);
    expect((await probe(http('/204'), port)).ok).toBe(true);
    expect((await probe(http('/302'), port)).ok).toBe(true);
    expect(await probe(http('/404'), port)).toEqual({
      ok: false,
      message: 'GET /404 answered HTTP 404',
    });
    expect(await probe(http('/500'), port)).toEqual({
      ok: false,
      message: 'GET /500 answered HTTP 500',
    });
    expect((await probe(http('/204', 204), port)).ok).toBe(true);
    expect((await probe(http('/200', 204), port)).ok).toBe(false);
  });

  it('http: a server that never answers times out, and the probe hangs up', async () => {
    const closed: Promise<unknown>[] = [];
    const port = await httpServer((req) => {
      closed.push(once(req.socket, 'close'));
    });
    const result = await probe(http('/', undefined, 100), port);
    expect(result).toEqual({ ok: false, message: 'timed out after 100 ms' });
    expect(closed).toHaveLength(1);
    await closed[0]; // no socket left open behind a failed check
  });

  it('never rejects, even for a port it cannot use', async () => {
    expect((await probe(tcp(), 70_000)).ok).toBe(false);
    expect((await probe(http('/'), -1)).ok).toBe(false);
  });
});

describe('HealthMonitor', () => {
  type Name = 'ready' | 'unready' | 'bootTimeout' | 'checked';

  /** Starts a monitor on a manual clock, recording every callback with the clock's time. */
  function monitor(check: ResolvedHealthCheck, port: number) {
    const clock = new ManualClock();
    const events: { name: Name; at: number; result: ProbeResult }[] = [];
    let waiting: { name: Name; resolve: () => void }[] = [];
    const record = (name: Name) => (result: ProbeResult) => {
      events.push({ name, at: clock.now(), result });
      for (const w of waiting.filter((w) => w.name === name)) w.resolve();
      waiting = waiting.filter((w) => w.name !== name);
    };
    const m = new HealthMonitor({
      check,
      port,
      clock,
      on: {
        ready: record('ready'),
        unready: record('unready'),
        bootTimeout: record('bootTimeout'),
        checked: record('checked'),
      },
    });
    monitors.push(m);
    const next = (name: Name): Promise<void> =>
      new Promise((resolve) => waiting.push({ name, resolve }));
    /** Advances the clock and waits for the probe it starts to finish. */
    const step = async (ms: number): Promise<void> => {
      const checked = next('checked');
      await clock.advance(ms);
      await checked;
    };
    const names = (): Name[] => events.filter((e) => e.name !== 'checked').map((e) => e.name);
    return { m, clock, events, next, step, names };
  }

  it('is ready on the first successful check', async () => {
    const { port } = await tcpServer();
    const t = monitor(tcp(), port);
    expect(t.m.ready).toBe(false);
    await t.step(0);
    expect(t.names()).toEqual(['ready']);
    expect(t.m.ready).toBe(true);
    await t.step(HEALTH_CHECK_DEFAULTS.intervalMs);
    expect(t.names()).toEqual(['ready']); // once, not on every success
  });

  it('is unready only after threshold failures in a row, and ready again after a success', async () => {
    const { server, port } = await tcpServer();
    const t = monitor(tcp({ threshold: 3, intervalMs: 1000 }), port);
    await t.step(0);
    server.close();
    await once(server, 'close');
    await t.step(1000);
    await t.step(1000);
    expect(t.names()).toEqual(['ready']);
    expect(t.m.ready).toBe(true);
    await t.step(1000);
    expect(t.names()).toEqual(['ready', 'unready']);
    expect(t.events.at(-1)?.result.message).toMatch(/nothing listens/);
    expect(t.m.ready).toBe(false);

    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    await t.step(1000);
    expect(t.names()).toEqual(['ready', 'unready', 'ready']);
  });

  it('does not count failures within the grace, then times out after threshold more', async () => {
    const port = await closedPort();
    const t = monitor(tcp({ graceMs: 5000, intervalMs: 1000, threshold: 3 }), port);
    await t.step(0);
    // Booting: probes after 25 ms, doubling up to the interval (t = 25, 75, 175, 375, 775,
    // 1575), then every interval (2575 .. 4575).
    for (const ms of [25, 50, 100, 200, 400, 800, 1000, 1000, 1000]) await t.step(ms);
    expect(t.clock.now()).toBe(4575);
    await t.step(1000); // 5575: the first failure past the grace
    await t.step(1000); // 6575: the second
    expect(t.names()).toEqual([]);
    const timedOut = t.next('bootTimeout');
    await t.step(1000); // 7575: the third
    await timedOut;
    expect(t.names()).toEqual(['bootTimeout']);
    expect(t.events.filter((e) => e.name === 'checked')).toHaveLength(13);
    expect(t.events.at(-1)).toMatchObject({ name: 'bootTimeout', at: 7575 });
    expect(t.clock.pending).toBe(0); // it stopped checking
  });

  it('probes a booting job sooner, and at the interval once it is ready', async () => {
    const port = await closedPort();
    const t = monitor(tcp({ intervalMs: 1000 }), port);
    await t.step(0);
    await t.step(25);
    await t.step(50); // t = 75: nothing listens yet
    const server = createTcpServer();
    servers.push(server);
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    await t.step(100); // t = 175: the job listens, and is ready 175 ms after it started
    expect(t.events.filter((e) => e.name === 'ready').map((e) => e.at)).toEqual([175]);
    await t.clock.advance(999);
    expect(t.events.filter((e) => e.name === 'checked')).toHaveLength(4); // no probe before 1175
    await t.step(1);
    expect(t.events.filter((e) => e.name === 'checked')).toHaveLength(5);
  });

  it('a job that was ready never gets a boot timeout', async () => {
    const { server, port } = await tcpServer();
    const t = monitor(tcp({ graceMs: 0, intervalMs: 1000, threshold: 2 }), port);
    await t.step(0);
    server.close();
    await once(server, 'close');
    for (let i = 0; i < 5; i++) await t.step(1000);
    expect(t.names()).toEqual(['ready', 'unready']);
  });

  it('stop() ends the checks and silences a probe in flight', async () => {
    const closed: Promise<unknown>[] = [];
    const port = await httpServer((req) => {
      closed.push(once(req.socket, 'close'));
    });
    const t = monitor({ ...http('/', undefined, 50), graceMs: 0, threshold: 1 }, port);
    const arrived = once(servers[0] as Server, 'request');
    await t.clock.advance(0);
    await arrived;
    t.m.stop();
    await closed[0]; // the probe timed out and hung up
    await t.clock.advance(60_000);
    expect(t.events).toEqual([]);
    expect(t.clock.pending).toBe(0);
    t.m.stop(); // idempotent
  });

  it('keeps checking when a callback throws, and logs it', async () => {
    const { port } = await tcpServer();
    const clock = new ManualClock();
    const errors: unknown[] = [];
    let checked = (): void => undefined;
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (obj: unknown) => void errors.push(obj),
      child: () => logger,
    };
    const m = new HealthMonitor({
      check: tcp(),
      port,
      clock,
      logger,
      on: {
        ...noop(),
        ready: () => {
          throw new Error('boom');
        },
        checked: () => checked(),
      },
    });
    monitors.push(m);
    const step = async (ms: number): Promise<void> => {
      const done = new Promise<void>((resolve) => (checked = resolve));
      await clock.advance(ms);
      await done;
    };
    await step(0);
    await step(HEALTH_CHECK_DEFAULTS.intervalMs); // a second check came: still scheduled
    expect(errors).toEqual([expect.objectContaining({ event: 'ready' })]);
    expect(m.ready).toBe(true);
  });

  it.each([0, -1, 70_000, Number.NaN, 80.5])('refuses port %s', (port) => {
    expect(() => new HealthMonitor({ check: tcp(), port, on: noop() })).toThrow(
      expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS }),
    );
  });
});

function noop() {
  return { ready: () => undefined, unready: () => undefined, bootTimeout: () => undefined };
}
