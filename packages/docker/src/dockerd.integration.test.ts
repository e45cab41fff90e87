import { afterAll, describe, expect, it } from 'vitest';
import { dockerClient, releaseDocker } from '../../../test/support/docker.js';

afterAll(releaseDocker);

describe('the dockerd the suites run against', () => {
  it('answers, runs Linux containers and has no registry to pull from', async () => {
    const docker = await dockerClient();
    expect(await docker.ping()).toBeTruthy();
    const info = (await docker.info()) as { OSType: string; Driver: string };
    expect(info.OSType).toBe('linux');
    expect(['overlay2', 'vfs']).toContain(info.Driver);
  });
});
