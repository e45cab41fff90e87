import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import {
  dockerClient,
  dockerSocket,
  releaseDocker,
  runContainer,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { main } from './cli.js';
import { createStackImage, type StackImage } from './stack-image.js';

const runId = testRunId('stack');
const repository = `flotilla-test/stack-${runId.toLowerCase()}`;
let docker: Docker;
let stack: StackImage;
let cacheDir: string;

beforeAll(async () => {
  docker = await dockerClient();
  cacheDir = await mkdtemp(join(tmpdir(), 'flotilla-stack-cache-'));
  stack = await createStackImage({
    docker,
    repository,
    labels: { 'flotilla.test': runId },
    cacheDir,
  });
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await rm(cacheDir, { recursive: true, force: true });
  await releaseDocker();
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isFlotillaError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  return err as Error;
}

describe('createStackImage', () => {
  it('imports an image tagged by the digest of its inputs, and latest', async () => {
    expect(stack.built).toBe(true);
    expect(stack.image).toBe(`${repository}:${stack.digest.slice(0, 12)}`);
    expect(stack.digest).toMatch(/^[0-9a-f]{64}$/);
    const latest = await docker.getImage(`${repository}:latest`).inspect();
    expect(latest.Id).toBe(stack.id);
    expect(latest.Config.Labels?.['flotilla.stack.digest']).toBe(stack.digest);
  });

  it('is idempotent: a second call finds the image and imports nothing', async () => {
    const again = await createStackImage({
      docker,
      repository,
      labels: { 'flotilla.test': runId },
      cacheDir,
    });
    expect(again).toMatchObject({ built: false, id: stack.id, image: stack.image });
    const images = await docker.listImages({
      filters: JSON.stringify({ label: [`flotilla.test=${runId}`] }),
    });
    expect(images).toHaveLength(1);
  });

  it('runs what buildpacks expect, as the non-root user flotilla, with a writable HOME', async () => {
    const script = [
      'set -e',
      'id -un; id -u',
      'echo "home=$HOME"',
      'touch "$HOME/written" && echo home-writable',
      'touch /tmp/x && echo tmp-writable',
      'echo abc | sed s/b/B/ | grep aBc',
      'mkdir -p /tmp/t/d && echo hi > /tmp/t/d/f && tar -C /tmp/t -czf /tmp/t.tgz d && gzip -t /tmp/t.tgz && tar -tzf /tmp/t.tgz | sort | head -1',
      'curl --version | head -1 | cut -d" " -f1',
      'test -s /etc/ssl/certs/ca-certificates.crt && echo ca-bundle',
      'node -e "console.log(\'node \' + process.version)"',
      'npm --version >/dev/null && echo npm-runs',
      'sort --version >/dev/null && basename /a/b && dirname /a/b',
    ].join('\n');
    const run = await runContainer(docker, stack.image, ['bash', '-c', script], {
      runId,
      user: 'flotilla',
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.split('\n')).toEqual([
      'flotilla',
      '1000',
      'home=/app',
      'home-writable',
      'tmp-writable',
      'aBc',
      'd/',
      'curl',
      'ca-bundle',
      `node ${process.version}`,
      'npm-runs',
      'b',
      '/a',
      '',
    ]);
    expect(run.code).toBe(0);
  });

  it('refuses a bad repository, a missing program and an aborted call, importing nothing', async () => {
    await expectCode(
      createStackImage({ docker, repository: 'Upper/Case' }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    await expectCode(
      createStackImage({ docker, repository: 'a/../b' }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    for (const extra of ['../../etc/shadow', '/etc/shadow', '.hidden', 'a\0b', '']) {
      await expectCode(
        createStackImage({ docker, repository, extraPrograms: [extra], cacheDir }),
        'FLOTILLA_DOCKER_INVALID_OPTIONS',
      );
    }
    await expectCode(
      createStackImage({ docker, repository, labels: { a: 'x\\" && evil' }, cacheDir }),
      'FLOTILLA_DOCKER_INVALID_OPTIONS',
    );
    const err = await expectCode(
      createStackImage({ docker, repository, extraPrograms: ['no-such-program-here'], cacheDir }),
      'FLOTILLA_DOCKER_STACK_INPUT',
    );
    expect(err.message).toContain('no-such-program-here');
    await expect(
      createStackImage({
        docker,
        repository: `${repository}-aborted`,
        signal: AbortSignal.abort(),
        cacheDir,
      }),
    ).rejects.toThrow();
    expect(
      await docker.listImages({
        filters: JSON.stringify({ reference: [`${repository}-aborted`] }),
      }),
    ).toEqual([]);
  });

  it('aborted in the middle of its import, leaves no image behind', async () => {
    const ac = new AbortController();
    const repo = `${repository}-mid`;
    const call = createStackImage({
      docker,
      repository: repo,
      labels: { 'flotilla.test': runId, mid: '1' },
      cacheDir,
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(new Error('stop now')), 300);
    await expect(call).rejects.toThrow('stop now');
    expect(await docker.listImages({ filters: JSON.stringify({ reference: [repo] }) })).toEqual([]);
  });

  it('the CLI prints the image and exits 0; a usage error exits 2', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'build',
        '--socket',
        await dockerSocket(),
        '--repository',
        repository,
        '--label',
        `flotilla.test=${runId}`,
        '--label',
        'cli=1',
      ],
      (s) => out.push(s),
      (s) => err.push(s),
    );
    // other labels make another digest: a new image, swept by its label
    expect(code).toBe(0);
    const printed = out.join('').trim();
    expect(printed).toMatch(new RegExp(`^${repository}:[0-9a-f]{12}$`));
    expect(printed).not.toBe(stack.image);
    expect((await docker.getImage(printed).inspect()).Config.Labels?.cli).toBe('1');
    expect(
      await main(
        ['frobnicate'],
        () => undefined,
        () => undefined,
      ),
    ).toBe(2);
    const failed: string[] = [];
    expect(
      await main(
        ['build', '--socket', await dockerSocket(), '--repository', 'BAD'],
        () => undefined,
        (s) => failed.push(s),
      ),
    ).toBe(1);
    expect(failed.join('')).toContain('FLOTILLA_DOCKER_INVALID_OPTIONS');
  });
});
