import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import {
  dockerClient,
  releaseDocker,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { ContainerExecutor, type ContainerExecRequest } from './container-executor.js';
import { createStackImage } from './stack-image.js';

const runId = testRunId('executor');
const labels = { 'flotilla.test': runId };
let docker: Docker;
let image: string;
let dir: string;
let executor: ContainerExecutor;

beforeAll(async () => {
  docker = await dockerClient();
  image = (await createStackImage({ docker })).image;
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-executor-'));
  await mkdir(join(dir, 'build'));
  await mkdir(join(dir, 'home'));
  executor = new ContainerExecutor({ docker, image, labels });
});

afterEach(async () => {
  await executor.close();
  await rm(dir, { recursive: true, force: true });
});

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '' };

function request(
  script: string,
  extra: Partial<ContainerExecRequest> = {},
): ContainerExecRequest & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    argv: ['bash', '-c', script],
    cwd: join(dir, 'build'),
    env: { ...ENV, HOME: join(dir, 'home') },
    mounts: [dir],
    onOutput: (stream, chunk) => (stream === 'stdout' ? out : err).push(chunk.toString('utf8')),
    out,
    err,
    ...extra,
  };
}

async function stepContainers(): Promise<number> {
  const list = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`flotilla.test=${runId}`] }),
  });
  return list.length;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFlotillaError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  return err as Error;
}

describe('ContainerExecutor', () => {
  it('runs a step as uid 1000 that writes into a mounted dir; the host reads what it wrote', async () => {
    await writeFile(join(dir, 'build', 'input.txt'), 'from the host\n', { mode: 0o600 });
    const req = request(
      'set -e; id -u; pwd; echo "home=$HOME" >&2; cat input.txt > copy.txt; echo made >> copy.txt; touch "$HOME/.cache-ok"; env | sort | grep -E "^(FOO|SECRET)=" || true',
      { env: { ...ENV, HOME: join(dir, 'home'), FOO: 'bar baz' } },
    );
    expect(await executor.exec(req)).toEqual({ code: 0, signal: null });
    expect(req.out.join('')).toBe(`1000\n${join(dir, 'build')}\nFOO=bar baz\n`);
    expect(req.err.join('')).toBe(`home=${join(dir, 'home')}\n`);
    expect(await readFile(join(dir, 'build', 'copy.txt'), 'utf8')).toBe('from the host\nmade\n');
    expect((await stat(join(dir, 'home', '.cache-ok'))).uid).toBe(1000);
    expect(await stepContainers()).toBe(0);
  });

  it('reports exit codes and a step killed by a signal', async () => {
    expect(await executor.exec(request('exit 7'))).toEqual({ code: 7, signal: null });
    expect(await executor.exec(request('kill -KILL $$'))).toEqual({
      code: null,
      signal: 'SIGKILL',
    });
    expect(await stepContainers()).toBe(0);
  });

  it('abort kills and removes the container, and everything the step started', async () => {
    const ac = new AbortController();
    const req = request('(sleep 1000 &); echo started; sleep 1000', {
      signal: ac.signal,
      onOutput: (_s, chunk) => {
        if (chunk.toString().includes('started')) ac.abort(new Error('cancelled by test'));
      },
    });
    await expect(executor.exec(req)).rejects.toThrow('cancelled by test');
    expect(await stepContainers()).toBe(0);
  });

  it('timeoutMs kills the step: it resolves with SIGKILL, the container removed', async () => {
    const t0 = performance.now();
    const res = await executor.exec(request('echo up; sleep 1000', { timeoutMs: 500 }));
    expect(res).toEqual({ code: null, signal: 'SIGKILL' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    expect(await stepContainers()).toBe(0);
  });

  it('close() kills the running steps; later exec calls fail CLOSED', async () => {
    const req = request('echo up; sleep 1000');
    const running = executor.exec(req);
    running.catch(() => undefined); // it fails while close() is awaited: handled at once
    while (req.out.join('') === '') await new Promise((r) => setTimeout(r, 20));
    await executor.close();
    await expectCode(running, 'FLOTILLA_DOCKER_CLOSED');
    await expectCode(executor.exec(request('true')), 'FLOTILLA_DOCKER_CLOSED');
    expect(await stepContainers()).toBe(0);
  });

  it('a program that does not exist is exit 127, as a shell says', async () => {
    const req = { ...request(''), argv: ['/no/such/program'] };
    expect(await executor.exec(req)).toEqual({ code: 127, signal: null });
    expect(req.err.join('')).toContain('/no/such/program');
    expect(await stepContainers()).toBe(0);
  });

  it('refuses bad requests and options with coded errors, running nothing', async () => {
    await expectCode(
      executor.exec({ ...request('true'), argv: [] }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), cwd: 'relative' }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), mounts: ['/'] }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), mounts: [`${dir}:/etc`] }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), argv: ['a\0b'] }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), env: { 'A-B': 'x' } }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), timeoutMs: Number.NaN }),
      'FLOTILLA_DOCKER_INVALID_REQUEST',
    );
    await expectCode(
      executor.exec({ ...request('true'), mounts: [join(dir, 'missing')] }),
      'FLOTILLA_DOCKER_MOUNT',
    );
    // every mount is given to the build user: never the host's own files
    await symlink('/etc', join(dir, 'etc-link'));
    for (const mount of [
      '/etc',
      '/usr/lib',
      '/tmp',
      '/var',
      '/var/lib/docker/x',
      join(dir, 'etc-link'),
    ]) {
      await expectCode(
        executor.exec({ ...request('true'), mounts: [mount] }),
        'FLOTILLA_DOCKER_INVALID_REQUEST',
      );
    }
    expect((await stat('/etc/passwd')).uid).toBe(0);
    expect(() => new ContainerExecutor({ docker, image, user: '0:0' })).toThrow(/non-root/);
    const absent = new ContainerExecutor({ docker, image: 'flotilla-test/absent:nope' });
    await expectCode(absent.exec(request('true')), 'FLOTILLA_DOCKER_IMAGE_NOT_FOUND');
    await absent.close();
    expect(await stepContainers()).toBe(0);
  });
});
