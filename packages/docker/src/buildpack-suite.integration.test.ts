// The buildpack suite of @flotilla/buildpack (real bash buildpacks and the bundled ones),
// run with every step inside the stack image through ContainerExecutor on a real dockerd.
import type Docker from 'dockerode';
import { afterAll, beforeAll } from 'vitest';
import { runBuildpackSuite } from '@flotilla/buildpack/testing';
import {
  dockerClient,
  releaseDocker,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { ContainerExecutor } from './container-executor.js';
import { createStackImage } from './stack-image.js';

const runId = testRunId('bp-suite');
let docker: Docker;
let image: string;

beforeAll(async () => {
  docker = await dockerClient();
  image = (await createStackImage({ docker })).image;
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

runBuildpackSuite({
  name: 'ContainerExecutor',
  createExecutor: () =>
    new ContainerExecutor({ docker, image, labels: { 'flotilla.test': runId } }),
});
