import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { jobEnv } from '@flotilla/host';
import {
  dockerClient,
  releaseDocker,
  runContainer,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { claimPortRange } from '../../../test/support/port-slots.js';
import { buildImage } from './build-image.js';
import { DockerDriver } from './docker-driver.js';
import { createStackImage } from './stack-image.js';

const runId = testRunId('build');
const repo = `flotilla-test/build-${runId.toLowerCase()}`;
const labels = { 'flotilla.test': runId };
let docker: Docker;
let stackImage: string;
let dir: string;

beforeAll(async () => {
  docker = await dockerClient();
  stackImage = (await createStackImage({ docker })).image;
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-build-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(map: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(map)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
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

/**
 * A port for a container (host network) to listen on, reserved for this process below the
 * ephemeral range: one the kernel gave a listener a moment before could be taken by any
 * outgoing connection before the container binds it.
 */
async function freePort(): Promise<number> {
  return (await claimPortRange(1)).from;
}

async function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n'),
    );
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

const SERVER = `const http = require('http');
http.createServer((req, res) => res.end('hello from ' + process.env.GREETING + ' as ' + process.getuid()))
  .listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening on ' + process.env.PORT));
process.on('SIGTERM', () => process.exit(0));
`;

async function tagged(tag: string): Promise<boolean> {
  return docker
    .getImage(tag)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

describe('buildImage', () => {
  it('builds a Dockerfile app FROM the stack image that answers HTTP on 127.0.0.1:PORT', async () => {
    await files({
      Dockerfile: `FROM ${stackImage}\nCOPY server.js /srv/\nWORKDIR /srv\nUSER flotilla\nENV GREETING=docker\nCMD ["node", "server.js"]\n`,
      'server.js': SERVER,
    });
    const lines: string[] = [];
    const built = await buildImage({
      docker,
      context: dir,
      tag: `${repo}:web`,
      labels,
      onOutput: (l) => lines.push(l),
    });
    expect(built).toMatchObject({
      image: `${repo}:web`,
      processTypes: { web: 'node server.js' },
      baseImages: [stackImage],
    });
    expect(built.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lines.some((l) => /^Step 1\/7 : FROM /.test(l))).toBe(true);
    expect(lines.every((l) => !l.includes('\n'))).toBe(true);
    // the labels option is a last step of its own
    expect(lines).toContain(`Successfully tagged ${repo}:web`);

    const driver = await DockerDriver.create({
      docker,
      instanceId: `b-${process.pid}`,
      stackImage,
      labels,
    });
    try {
      const port = await freePort();
      const id = 'demo.web.1';
      await driver.start({
        id,
        app: 'demo',
        release: 'v1',
        processType: 'web',
        index: 1,
        command: built.processTypes.web as string,
        cwd: dir,
        image: built.image,
        env: jobEnv({ jobId: id, app: 'demo', release: 'v1', processType: 'web', index: 1, port }),
      });
      for await (const l of driver.logs(id, {
        follow: true,
        signal: AbortSignal.timeout(15_000),
      })) {
        if (l.line.startsWith('listening')) break;
      }
      const response = await httpGet(port);
      expect(response).toMatch(/^HTTP\/1\.[01] 200/);
      expect(response.endsWith('hello from docker as 1000')).toBe(true);
      expect(await driver.stop(id, { graceMs: 5000 })).toMatchObject({
        code: 0,
        reason: 'stopped',
      });
    } finally {
      for (const j of await driver.list()) await driver.stop(j.id, { graceMs: 0 });
      await driver.close();
    }
  });

  it('honours .dockerignore and build args, and takes process types from a Procfile', async () => {
    await files({
      Dockerfile: `ARG BASE=none\nFROM \${BASE}\nARG WHO\nCOPY . /src/\nRUN test ! -e /src/secret.txt && test ! -e /src/logs/a.log && test -e /src/logs/keep.log && test -e /src/kept.txt && echo "who=$WHO" > /src/who\n`,
      '.dockerignore': 'secret.txt\nlogs/*.log\n!logs/keep.log\n',
      'secret.txt': 'no',
      'kept.txt': 'yes',
      'logs/a.log': 'no',
      'logs/keep.log': 'yes',
      Procfile: 'web: node server.js\nworker: node worker.js\n',
    });
    const built = await buildImage({
      docker,
      context: dir,
      tag: `${repo}:ignore`,
      labels,
      buildArgs: { BASE: stackImage, WHO: 'args' },
    });
    expect(built.processTypes).toEqual({ web: 'node server.js', worker: 'node worker.js' });
    const run = await runContainer(docker, built.image, ['cat', '/src/who'], { runId });
    expect(run.stdout).toBe('who=args\n');
  });

  it('refuses a FROM that is not present locally before building, naming it', async () => {
    await files({ Dockerfile: 'FROM debian:bookworm\nRUN echo never\n' });
    const lines: string[] = [];
    const err = await expectCode(
      buildImage({
        docker,
        context: dir,
        tag: `${repo}:nofrom`,
        labels,
        onOutput: (l) => lines.push(l),
      }),
      'FLOTILLA_DOCKER_IMAGE_NOT_FOUND',
    );
    expect(err.message).toContain('debian:bookworm');
    expect(err.message).toContain('never pulled');
    expect(lines).toEqual([]);
    expect(await tagged(`${repo}:nofrom`)).toBe(false);
    await files({
      Dockerfile: `FROM ${stackImage} AS base\nFROM base\nCOPY --from=busybox:absent /bin/sh /x\n`,
    });
    const copy = await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:nofrom`, labels }),
      'FLOTILLA_DOCKER_IMAGE_NOT_FOUND',
    );
    expect(copy.message).toContain('busybox:absent');
  });

  it('fails a broken step with BUILD_FAILED, its output streamed, and tags nothing', async () => {
    await files({ Dockerfile: `FROM ${stackImage}\nRUN echo about to fail && exit 3\n` });
    const lines: string[] = [];
    const err = await expectCode(
      buildImage({
        docker,
        context: dir,
        tag: `${repo}:broken`,
        labels,
        onOutput: (l) => lines.push(l),
      }),
      'FLOTILLA_DOCKER_BUILD_FAILED',
    );
    expect(err.message).toContain('returned a non-zero code: 3');
    expect(lines).toContain('about to fail');
    expect(await tagged(`${repo}:broken`)).toBe(false);
  });

  it('aborted mid-build, rejects with the reason and tags nothing', async () => {
    await files({ Dockerfile: `FROM ${stackImage}\nRUN echo sleeping && sleep 30\n` });
    const ac = new AbortController();
    const call = buildImage({
      docker,
      context: dir,
      tag: `${repo}:aborted`,
      labels,
      signal: ac.signal,
      onOutput: (l) => {
        if (l === 'sleeping') ac.abort(new Error('user cancelled'));
      },
    });
    await expect(call).rejects.toThrow('user cancelled');
    expect(await tagged(`${repo}:aborted`)).toBe(false);
  });

  it('refuses bad options and contexts with coded errors', async () => {
    await files({ Dockerfile: `FROM ${stackImage}\n` });
    await expectCode(
      buildImage({ docker, context: 'relative', tag: `${repo}:x` }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: 'Upper:x' }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}` }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:a/b` }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:x`, buildArgs: { 'A-B': 'x' } }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:x`, dockerfile: '../Dockerfile' }),
      'FLOTILLA_DOCKER_DOCKERFILE',
    );
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:x`, dockerfile: 'Nope' }),
      'FLOTILLA_DOCKER_DOCKERFILE',
    );
    await expectCode(
      buildImage({ docker, context: join(dir, 'missing'), tag: `${repo}:x` }),
      'FLOTILLA_DOCKER_CONTEXT',
    );
    await files({ 'big.bin': 'x'.repeat(4096) });
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:x`, maxContextBytes: 1024 }),
      'FLOTILLA_DOCKER_CONTEXT',
    );
    await files({ Dockerfile: '# only a comment\n' });
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:x` }),
      'FLOTILLA_DOCKER_DOCKERFILE',
    );
    await files({ Dockerfile: `FROM ${stackImage}\n`, Procfile: 'web node server.js\n' });
    await expectCode(
      buildImage({ docker, context: dir, tag: `${repo}:procfile`, labels }),
      'FLOTILLA_DOCKER_PROCFILE',
    );
  });
});
