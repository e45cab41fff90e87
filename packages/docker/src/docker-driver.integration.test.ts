import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { afterAll, beforeAll } from 'vitest';
import { runDriverContract } from '@flotilla/host/testing';
import {
  dockerClient,
  releaseDocker,
  sweepDocker,
  testRunId,
} from '../../../test/support/docker.js';
import { claimPortRange } from '../../../test/support/port-slots.js';
import { DockerDriver } from './docker-driver.js';
import { createStackImage } from './stack-image.js';

const runId = testRunId('driver');
let docker: Docker;
let stackImage: string;

beforeAll(async () => {
  docker = await dockerClient();
  // the shared stack image: built once (by digest) and kept, as a cache, between runs
  stackImage = (await createStackImage({ docker })).image;
}, 120_000);

afterAll(async () => {
  if (docker !== undefined) await sweepDocker(docker, runId);
  await releaseDocker();
});

/** One instance id per contract test: its work dir stands for the host. */
function instanceOf(workDir: string): string {
  return `t-${createHash('sha256').update(workDir).digest('hex').slice(0, 12)}`;
}

runDriverContract({
  name: 'DockerDriver',
  create: (workDir) =>
    DockerDriver.create({
      docker,
      instanceId: instanceOf(workDir),
      stackImage,
      labels: { 'flotilla.test': runId },
    }),
  restart: 'adopt',
  // Reserved below the ephemeral range: see DriverContractOptions.freePort.
  freePort: async () => (await claimPortRange(1)).from,
});
