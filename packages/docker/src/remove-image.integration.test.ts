import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { buildImage } from './build-image.js';
import { imageExists } from './internal/engine.js';
import { listImageTags } from './list-image-tags.js';
import { removeImage } from './remove-image.js';

const runId = testRunId('rmi');
const repo = `flotilla-test/rmi-${runId.toLowerCase()}`;
const labels = { 'flotilla.test': runId };
let docker: Docker;
let dir: string;

beforeAll(async () => {
  docker = await dockerClient();
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-rmi-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A one-file image FROM scratch (nothing to pull), tagged `tag`. */
async function built(tag: string, content: string): Promise<string> {
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
  await writeFile(join(dir, 'hello.txt'), content);
  return (await buildImage({ docker, context: dir, tag, labels })).image;
}

describe('removeImage (real dockerd)', () => {
  it('removes a tag it was given, and answers false for a tag that is not there', async () => {
    const image = await built(`${repo}:b1`, 'one');
    expect(await imageExists(docker, image)).toBeDefined();
    expect(await removeImage({ docker, image })).toBe(true);
    expect(await imageExists(docker, image)).toBeUndefined();
    expect(await removeImage({ docker, image })).toBe(false);
  });

  it('removes one tag of an image tagged twice and leaves the other', async () => {
    const image = await built(`${repo}:b2`, 'two');
    await docker.getImage(image).tag({ repo, tag: 'kept' });
    expect(await removeImage({ docker, image })).toBe(true);
    expect(await imageExists(docker, image)).toBeUndefined();
    expect(await imageExists(docker, `${repo}:kept`)).toBeDefined();
    expect(await removeImage({ docker, image: `${repo}:kept` })).toBe(true);
  });

  it('refuses, with a coded error, an image a container still uses, and leaves it', async () => {
    const image = await built(`${repo}:b3`, 'three');
    const container = await docker.createContainer({
      Image: image,
      Cmd: ['/none'],
      Labels: labels,
    });
    try {
      const err = await removeImage({ docker, image }).catch((e: unknown) => e);
      expect(isFlotillaError(err, 'FLOTILLA_DOCKER_ENGINE')).toBe(true);
      expect((err as Error).message).toContain('a container still uses it');
      expect((err as { retryable: boolean }).retryable).toBe(false);
      expect(await imageExists(docker, image)).toBeDefined();
    } finally {
      await container.remove({ force: true });
    }
    expect(await removeImage({ docker, image })).toBe(true);
  });

  it('listImageTags lists the tags of a repository, or of every repository under a pattern', async () => {
    const one = await built(`${repo}-a:b1`, 'a1');
    await docker.getImage(one).tag({ repo: `${repo}-a`, tag: 'b2' });
    const other = await built(`${repo}-b:b1`, 'b1');
    expect(await listImageTags({ docker, reference: `${repo}-a` })).toEqual([
      `${repo}-a:b1`,
      `${repo}-a:b2`,
    ]);
    const prefix = repo.slice(0, repo.indexOf('/'));
    const all = await listImageTags({
      docker,
      reference: `${prefix}/rmi-${runId.toLowerCase()}-*`,
    });
    expect(all).toEqual([`${repo}-a:b1`, `${repo}-a:b2`, other].sort());
    expect(await listImageTags({ docker, reference: `${repo}-none` })).toEqual([]);
    for (const reference of ['', 'flotilla/demo:b1', 'flotilla/demo@sha256:00', 'a//b', 'x\0'])
      await expect(listImageTags({ docker, reference })).rejects.toMatchObject({
        code: 'FLOTILLA_DOCKER_INVALID_OPTIONS',
      });
  });

  it('refuses what is not repository:tag before asking dockerd', async () => {
    const untouchable = {
      getImage: () => {
        throw new Error('dockerd must not be asked');
      },
    } as unknown as Docker;
    for (const image of [
      '',
      'ubuntu',
      'sha256:0123456789abcdef',
      'Flotilla/Demo:b1',
      'flotilla/demo:b1\0',
      'flotilla/demo:../x',
      `flotilla/demo:${'x'.repeat(300)}`,
      42,
    ]) {
      const err = await removeImage({ docker: untouchable, image: image as string }).catch(
        (e: unknown) => e,
      );
      expect(
        isFlotillaError(err, 'FLOTILLA_DOCKER_INVALID_OPTIONS'),
        `${String(image)}: ${String(err)}`,
      ).toBe(true);
    }
  });
});
