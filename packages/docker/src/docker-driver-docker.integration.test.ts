// What the DockerDriver does beyond the driver contract: limits, networking modes, labels,
// ownership of the slug dir, containers removed from under it, races and bad options.
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { jobEnv, type ExitStatus, type JobSpec } from '@flotilla/host';
import {
  dockerClient,
  releaseDocker,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { claimPortRange } from '../../../test/support/port-slots.js';
import {
  DockerDriver,
  type DockerDriverClient,
  type DockerDriverOptions,
} from './docker-driver.js';
import { containerName } from './internal/labels.js';
import { createStackImage } from './stack-image.js';

const runId = testRunId('driver-docker');
let docker: Docker;
let stackImage: string;
let workDir: string;
let drivers: DockerDriver[];
let seq = 0;

beforeAll(async () => {
  docker = await dockerClient();
  stackImage = (await createStackImage({ docker })).image;
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'flotilla-docker-driver-'));
  drivers = [];
});

afterEach(async () => {
  for (const d of drivers) {
    for (const j of await d.list().catch(() => [])) await d.stop(j.id, { graceMs: 0 });
    await d.close();
  }
  await sweepDocker(docker, runId);
  await rm(workDir, { recursive: true, force: true });
});

async function open(extra: Partial<DockerDriverOptions> = {}): Promise<DockerDriver> {
  const d = await DockerDriver.create({
    docker,
    instanceId: `${runId.toLowerCase()}-${++seq}`.slice(-60).replace(/^[^a-z0-9]+/, ''),
    stackImage,
    labels: { 'flotilla.test': runId },
    ...extra,
  });
  drivers.push(d);
  return d;
}

function spec(command: string, extra: Partial<JobSpec> & { port?: number } = {}): JobSpec {
  const id = `dd.web.${++seq}`;
  const { port, ...rest } = extra;
  return {
    id,
    app: 'dd',
    release: 'v1',
    processType: 'web',
    index: seq,
    command,
    cwd: workDir,
    env: jobEnv({
      jobId: id,
      app: 'dd',
      release: 'v1',
      processType: 'web',
      index: seq,
      ...(port === undefined ? {} : { port }),
    }),
    ...rest,
  };
}

async function output(driver: DockerDriver, id: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const l of driver.logs(id)) if (l.stream !== 'system') lines.push(l.line);
  return lines;
}

/** Resolves once the job has written `text` as a line; fails after 20 s. */
async function untilLine(driver: DockerDriver, id: string, text: string): Promise<void> {
  const signal = AbortSignal.timeout(20_000);
  for await (const l of driver.logs(id, { follow: true, signal })) if (l.line === text) return;
  throw new Error(`job ${id} never wrote ${text}`);
}

function waitExit(driver: DockerDriver, id: string): Promise<ExitStatus> {
  return driver.wait(id, { signal: AbortSignal.timeout(20_000) });
}

/**
 * A port for a container (host network) to listen on, reserved for this process below the
 * ephemeral range: one the kernel gave a listener a moment before could be taken by any
 * outgoing connection before the container binds it.
 */
async function freePort(): Promise<number> {
  return (await claimPortRange(1)).from;
}

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

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFlotillaError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code, String(err)).toBe(code);
  return err as Error;
}

describe('DockerDriver', () => {
  it('runs a slug as uid 1000 in /app, its HOME, and leaves files the host can use', async () => {
    const driver = await open();
    await writeFile(join(workDir, 'hello.txt'), 'from the slug\n');
    const s = spec('id -u; echo "$HOME $(pwd)"; cat hello.txt; echo made > "$HOME/out.txt"');
    await driver.start(s);
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0, reason: 'exited' });
    expect(await output(driver, s.id)).toEqual(['1000', '/app /app', 'from the slug']);
    const made = await stat(join(workDir, 'out.txt'));
    expect(made.uid).toBe(1000);
    await rm(join(workDir, 'out.txt')); // root on the host can still remove it
  });

  it('mounts a slug dir whose path holds ":" and "," (a job id with a colon) at /app', async () => {
    const driver = await open();
    const cwd = join(workDir, 'web:1,ro');
    await mkdir(cwd);
    await writeFile(join(cwd, 'hello.txt'), 'colon\n');
    const s = spec('cat hello.txt; echo made > out.txt', { cwd });
    await driver.start(s);
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0, reason: 'exited' });
    expect(await output(driver, s.id)).toEqual(['colon']);
    expect((await stat(join(cwd, 'out.txt'))).uid).toBe(1000);
  });

  it('labels the container with the job, and removes it on remove()', async () => {
    const driver = await open();
    const s = spec('exit 0', { stopGraceMs: 1234 });
    await driver.start(s);
    await waitExit(driver, s.id);
    const [c] = await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`flotilla.job=${s.id}`, `flotilla.test=${runId}`] }),
    });
    expect(c?.Labels).toMatchObject({
      'flotilla.app': 'dd',
      'flotilla.release': 'v1',
      'flotilla.type': 'web',
      'flotilla.index': String(s.index),
      'flotilla.driver': driver.instanceId,
      'flotilla.stop-grace-ms': '1234',
    });
    await driver.remove(s.id);
    expect(
      await docker.listContainers({
        all: true,
        filters: JSON.stringify({ id: [c?.Id ?? 'none'] }),
      }),
    ).toEqual([]);
  });

  it('kills a job over its memory limit and reports reason memory', async () => {
    const driver = await open();
    const s = spec(
      `node -e "const a = []; console.log('up'); setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 5)"`,
      { memoryMiB: 96 },
    );
    await driver.start(s);
    const status = await waitExit(driver, s.id);
    expect(status).toMatchObject({ reason: 'memory', signal: 'SIGKILL', code: null });
    expect(status.message).toContain('memory limit');
    const inspected = await docker
      .getContainer(
        (
          await docker.listContainers({
            all: true,
            filters: JSON.stringify({ label: [`flotilla.job=${s.id}`] }),
          })
        )[0]?.Id ?? '',
      )
      .inspect();
    expect(inspected.HostConfig.Memory).toBe(96 * 1024 * 1024);
  });

  it("caps the processes of a job (pidsLimit, default 4096): a fork bomb cannot take the host's pids", async () => {
    const pidsMax = 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max';
    const limited = await open({ pidsLimit: 32 });
    const s = spec(pidsMax);
    await limited.start(s);
    expect(await waitExit(limited, s.id)).toMatchObject({ code: 0 });
    expect(await output(limited, s.id)).toEqual(['32']);
    const byDefault = await open();
    const d = spec(pidsMax);
    await byDefault.start(d);
    expect(await waitExit(byDefault, d.id)).toMatchObject({ code: 0 });
    expect(await output(byDefault, d.id)).toEqual(['4096']);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      await expectCode(open({ pidsLimit: bad }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    }
  });

  it('gives a job its CPU share as a CFS quota', async () => {
    const driver = await open();
    const s = spec(
      'echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"',
      {
        cpuMillis: 250,
      },
    );
    await driver.start(s);
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0 });
    const [line] = await output(driver, s.id);
    const [quota, period] = (line ?? '').split(' ').map(Number) as [number, number];
    expect(quota / period).toBeCloseTo(0.25, 3);
  });

  it('bridge networking publishes the PORT on 127.0.0.1 only', async () => {
    const driver = await open({ network: 'bridge' });
    const port = await freePort();
    const s = spec(
      `node -e "require('net').createServer((c) => c.end('bridged ' + require('os').hostname())).listen(Number(process.env.PORT), '0.0.0.0', () => console.log('listening'))"`,
      { port },
    );
    await driver.start(s);
    for await (const l of driver.logs(s.id, {
      follow: true,
      signal: AbortSignal.timeout(15_000),
    })) {
      if (l.line === 'listening') break;
    }
    // docker-proxy may take a moment after the job listens: retry the connection briefly
    let text = '';
    for (let i = 0; i < 50 && !text.startsWith('bridged'); i++) {
      text = await fetchText(port).catch(() => '');
      if (!text.startsWith('bridged')) await new Promise((r) => setTimeout(r, 100));
    }
    expect(text).toMatch(/^bridged [0-9a-f]{12}$/);
    const [c] = await docker.listContainers({
      filters: JSON.stringify({ label: [`flotilla.job=${s.id}`] }),
    });
    const inspected = await docker.getContainer(c?.Id ?? '').inspect();
    expect(inspected.HostConfig.NetworkMode).toBe('bridge');
    expect(inspected.NetworkSettings.Ports[`${port}/tcp`]).toEqual([
      { HostIp: '127.0.0.1', HostPort: String(port) },
    ]);
    expect(await driver.stop(s.id, { graceMs: 5000 })).toMatchObject({ reason: 'stopped' });
  });

  it('reports a job whose container was removed from under it as lost', async () => {
    const driver = await open();
    const s = spec('echo up; sleep 1000');
    await driver.start(s);
    const [c] = await docker.listContainers({
      filters: JSON.stringify({ label: [`flotilla.job=${s.id}`] }),
    });
    await docker.getContainer(c?.Id ?? '').remove({ force: true });
    const status = await waitExit(driver, s.id);
    expect(['lost', 'exited']).toContain(status.reason);
    expect((await driver.inspect(s.id)).state).toBe('exited');
    await driver.remove(s.id); // the container is gone already: still forgotten
    await expectCode(driver.inspect(s.id), 'FLOTILLA_HOST_JOB_NOT_FOUND');
  });

  it('two drivers of one instance racing to start a job: one wins, the other gets JOB_EXISTS', async () => {
    const a = await open();
    const b = await DockerDriver.create({
      docker,
      instanceId: a.instanceId,
      stackImage,
      labels: { 'flotilla.test': runId },
    });
    drivers.push(b);
    const s = spec('sleep 1000');
    const results = await Promise.allSettled([a.start(s), b.start(s)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((failed.reason as { code: string }).code).toBe('FLOTILLA_HOST_JOB_EXISTS');
  });

  it('runs a local image with spec.image, and refuses one that is not present', async () => {
    const driver = await open();
    const s = spec('echo "image job as $(id -u) in $(pwd)"', { image: stackImage });
    await driver.start(s);
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0 });
    expect(await output(driver, s.id)).toEqual(['image job as 0 in /app']);
    const err = await expectCode(
      driver.start(spec('true', { image: 'flotilla-test/absent:nope' })),
      'FLOTILLA_HOST_START_FAILED',
    );
    expect(err.message).toContain('never pulled');
  });

  it('refuses bad options and signals with coded errors', async () => {
    await expectCode(open({ instanceId: 'a/b' }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(open({ instanceId: 'x\0y' }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(open({ user: 'root' }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(open({ network: 'overlay' as 'host' }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(open({ defaultStopGraceMs: -1 }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(open({ labels: { 'flotilla.job': 'x' } }), 'FLOTILLA_DOCKER_INVALID_OPTIONS');
    await expectCode(
      open({ stackImage: 'flotilla-test/absent:nope' }),
      'FLOTILLA_DOCKER_IMAGE_NOT_FOUND',
    );
    const driver = await open();
    const s = spec('sleep 1000');
    await driver.start(s);
    await expectCode(driver.signal(s.id, 'SIGSTOP'), 'FLOTILLA_HOST_INVALID_OPTIONS');
    await expectCode(driver.stop(s.id, { graceMs: Number.NaN }), 'FLOTILLA_HOST_INVALID_OPTIONS');
    await expectCode(
      driver.start({ ...spec('true'), memoryMiB: -5 }),
      'FLOTILLA_HOST_INVALID_SPEC',
    );
    for (const cwd of ['/etc', '/', '/tmp', '/usr/lib']) {
      await expectCode(driver.start({ ...spec('true'), cwd }), 'FLOTILLA_HOST_INVALID_SPEC');
    }
    await symlink('/etc', join(workDir, 'etc-link'));
    await expectCode(
      driver.start({ ...spec('true'), cwd: join(workDir, 'etc-link') }),
      'FLOTILLA_HOST_INVALID_SPEC',
    );
    expect((await stat('/etc/passwd')).uid).toBe(0);
    await expectCode(
      driver.start({ ...spec('true'), command: 'a\0b' }),
      'FLOTILLA_HOST_INVALID_SPEC',
    );
    // sleep dies of the SIGTERM itself, or of the SIGKILL right after it: stopped either way
    expect((await driver.stop(s.id, { graceMs: 0 })).reason).toBe('stopped');
  });

  it('runs jobs whose ids hold @ : + (characters Docker refuses in names)', async () => {
    const driver = await open();
    const s = { ...spec('echo "$FLOTILLA_JOB_ID"'), id: 'app@v1:web+1' };
    await driver.start({ ...s, env: { ...s.env, FLOTILLA_JOB_ID: s.id } });
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0 });
    expect(await output(driver, s.id)).toEqual(['app@v1:web+1']);
  });

  it('keeps output with NUL bytes, invalid UTF-8 and a line longer than a Docker log frame', async () => {
    const driver = await open({ log: { maxLineBytes: 64 * 1024, maxBytes: 1024 * 1024 } });
    const s = spec(
      `printf 'a\\0b\\n'; printf '\\377\\376\\n'; head -c 40000 /dev/zero | tr '\\0' x; echo; echo end`,
    );
    await driver.start(s);
    expect(await waitExit(driver, s.id)).toMatchObject({ code: 0 });
    const lines = await output(driver, s.id);
    expect(lines[0]).toBe('a\0b');
    expect(lines[1]).toBe('\uFFFD\uFFFD');
    expect(lines[2]).toBe('x'.repeat(40000));
    expect(lines[3]).toBe('end');
  });

  it('keeps the last lines of a job that writes fast past its log file size right before it ends', async () => {
    const driver = await open({ maxLogFileBytes: 64 * 1024 });
    for (const command of [
      'yes 0123456789abcdef | head -c 19999990; echo last words; exit 3',
      "head -c 50000000 /dev/zero | tr '\\0' a; echo; echo last words; exit 3",
    ]) {
      const s = spec(command);
      await driver.start(s);
      expect(await waitExit(driver, s.id)).toMatchObject({ code: 3 });
      const lines = await output(driver, s.id);
      expect(lines.at(-1)).toBe('last words');
      // dockerd's own complaint when its follower falls behind is not the job's output
      expect(lines.filter((l) => l.startsWith('Error grabbing logs'))).toEqual([]);
      const all: string[] = [];
      for await (const l of driver.logs(s.id)) all.push(l.stream);
      expect(all.at(-1)).toBe('system');
    }
  });

  it('fails with a retryable engine error when dockerd does not answer', async () => {
    const { default: DockerCtor } = await import('dockerode');
    const err = await expectCode(
      DockerDriver.create({
        docker: new DockerCtor({ socketPath: join(workDir, 'no.sock') }),
        instanceId: 'x',
        stackImage,
      }),
      'FLOTILLA_DOCKER_ENGINE',
    );
    expect((err as unknown as { retryable: boolean }).retryable).toBe(true);
  });

  it('a stop dockerd did not take fails retryably, and a later stop stops the job', async () => {
    // the real dockerd, but its first kill refused as by a dockerd that went away
    let refuse = 1;
    const flaky: DockerDriverClient = {
      createContainer: docker.createContainer.bind(docker),
      listContainers: docker.listContainers.bind(docker),
      getImage: docker.getImage.bind(docker),
      getContainer: (id: string) => {
        const c = docker.getContainer(id);
        const kill = c.kill.bind(c);
        c.kill = (async (opts: object) => {
          if (refuse-- > 0)
            throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
          return kill(opts);
        }) as typeof c.kill;
        return c;
      },
    };
    const driver = await open({ docker: flaky });
    const errors: Error[] = [];
    driver.on('error', (e) => errors.push(e));
    // `& wait`: the job's shell waits in a builtin, which its trapped SIGTERM interrupts. A
    // `sleep` it ran in the foreground loses a SIGTERM that comes between bash's fork and its
    // exec (bash's handler is still set there), and the shell waits for it: killed after the grace.
    const s = spec('echo up; sleep 1000 & wait');
    await driver.start(s);
    const err = await expectCode(driver.stop(s.id, { graceMs: 1000 }), 'FLOTILLA_DOCKER_ENGINE');
    expect((err as unknown as { retryable: boolean }).retryable).toBe(true);
    expect(errors).toEqual([err]);
    expect((await driver.inspect(s.id)).state).toBe('running');
    // SIGTERM ends it (by the signal, or with 0 when it came between two commands), no SIGKILL
    const st = await driver.stop(s.id, { graceMs: 5000 });
    expect(st.reason).toBe('stopped');
    expect(st.signal).not.toBe('SIGKILL');
  });

  it('a stop right after start is not lost: SIGTERM reaches the job at once', async () => {
    const driver = await open();
    for (let i = 0; i < 5; i++) {
      // `& wait`, as above: what is tested is that PID 1 passes the SIGTERM on, not bash's
      // fork/exec window, where a SIGTERM to a foreground `sleep` is lost.
      const s = spec('sleep 1000 & wait');
      await driver.start(s);
      // a lost SIGTERM would end it by SIGKILL after the grace
      const st = await driver.stop(s.id, { graceMs: 5000 });
      expect(st.reason).toBe('stopped');
      expect(st.signal).not.toBe('SIGKILL');
    }
  });

  it('close() during start(): start fails CLOSED, and the next driver adopts the job', async () => {
    const first = await open();
    const s = spec('echo up; sleep 1000');
    const starting = first.start(s);
    starting.catch(() => undefined); // it fails while close() is awaited: handled at once
    await first.close();
    await expectCode(starting, 'FLOTILLA_HOST_CLOSED');
    const second = await DockerDriver.create({
      docker,
      instanceId: first.instanceId,
      stackImage,
      labels: { 'flotilla.test': runId },
    });
    drivers.push(second);
    expect((await second.list()).map((j) => [j.id, j.adopted])).toEqual([[s.id, true]]);
    expect(await second.stop(s.id, { graceMs: 2000 })).toMatchObject({ reason: 'stopped' });
  });

  it('does not adopt a foreign container carrying forged flotilla labels: it is never listed, stopped or removed', async () => {
    const instanceId = `${runId.toLowerCase()}-${++seq}`.slice(-60).replace(/^[^a-z0-9]+/, '');
    const forged = (id: string): Record<string, string> => ({
      'flotilla.test': runId,
      'flotilla.driver': instanceId,
      'flotilla.job': id,
      'flotilla.app': 'dd',
      'flotilla.type': 'web',
      'flotilla.index': '1',
    });
    // one with any name, one with the very name the driver would give the job, not its init
    const foreign = [
      await docker.createContainer({
        Image: stackImage,
        name: `foreign-${instanceId}`,
        Entrypoint: ['sleep', '1000'],
        Labels: forged('dd.web.foreign'),
      }),
      await docker.createContainer({
        Image: stackImage,
        name: containerName(instanceId, 'dd.web.named'),
        Entrypoint: ['sleep', '1000'],
        Labels: forged('dd.web.named'),
      }),
    ];
    for (const c of foreign) await c.start();
    const driver = await open({ instanceId });
    expect(await driver.list()).toEqual([]);
    await expectCode(driver.stop('dd.web.foreign'), 'FLOTILLA_HOST_JOB_NOT_FOUND');
    await expectCode(driver.stop('dd.web.named'), 'FLOTILLA_HOST_JOB_NOT_FOUND');
    await driver.close();
    for (const c of foreign) {
      expect(((await c.inspect()) as { State: { Running: boolean } }).State.Running).toBe(true);
    }
    // the driver's own containers are still adopted beside them
    const own = await open({ instanceId });
    const s = spec('sleep 1000');
    await own.start(s);
    await own.close();
    const next = await open({ instanceId });
    expect((await next.list()).map((j) => j.id)).toEqual([s.id]);
  });

  it('a job paused from outside (docker pause) is thawed to take a signal or a stop', async () => {
    const driver = await open();
    const s = spec(`trap 'echo got-usr1' USR1; echo up; while :; do sleep 0.1; done`);
    await driver.start(s);
    await untilLine(driver, s.id, 'up');
    const [found] = await docker.listContainers({
      filters: JSON.stringify({ label: [`flotilla.job=${s.id}`] }),
    });
    expect(found).toBeDefined();
    const container = docker.getContainer(found?.Id ?? '');
    await container.pause();
    await driver.signal(s.id, 'SIGUSR1');
    await untilLine(driver, s.id, 'got-usr1');
    // Paused again. dockerd thaws a paused container to deliver a signal, and may freeze it
    // again right after (a pause then answers 409: it already is) or report the thaw late,
    // after this pause (State.Paused false again; CI saw it): paused until dockerd says so.
    await vi.waitFor(
      async () => {
        await container.pause().catch((err: unknown) => {
          if ((err as { statusCode?: number }).statusCode !== 409) throw err;
        });
        expect((await container.inspect()).State.Paused).toBe(true);
      },
      { timeout: 10_000, interval: 200 },
    );
    // a stop that waited for the paused job would end by SIGKILL after the grace
    const st = await driver.stop(s.id, { graceMs: 10_000 });
    expect(st).toMatchObject({ reason: 'stopped' });
    expect(st.signal).not.toBe('SIGKILL');
  });

  it('close() while a stop waits out its grace: the stop finishes, then wait calls fail CLOSED', async () => {
    const driver = await open();
    const s = spec(`trap 'echo ignoring' TERM; while :; do sleep 0.1; done`);
    await driver.start(s);
    const stopping = driver.stop(s.id, { graceMs: 300 });
    await driver.close();
    expect(await stopping).toMatchObject({ signal: 'SIGKILL', reason: 'stopped' });
    await expectCode(driver.list(), 'FLOTILLA_HOST_CLOSED');
    await driver.close(); // idempotent
  });
});
