import { createStackImage, DockerDriver } from '@flotilla/docker';
import type { Logger } from '@flotilla/core';
import Docker from 'dockerode';

/** The dockerd `--driver docker` uses: `FLOTILLA_DOCKER_HOST` (a socket path or `unix://path`), else the system's. */
export function dockerClient(env: NodeJS.ProcessEnv = process.env): Docker {
  const host = env.FLOTILLA_DOCKER_HOST;
  const socketPath =
    host === undefined || host === '' ? '/var/run/docker.sock' : host.replace(/^unix:\/\//, '');
  return new Docker({ socketPath });
}

/**
 * The Docker side of a host: the stack image (built from this machine's files the first time,
 * which takes a while, so it is said), and a `DockerDriver` running jobs in it.
 */
export async function dockerDriver(
  docker: Docker,
  hostId: string,
  logger: Logger,
  say: (line: string) => void,
): Promise<DockerDriver> {
  say('Preparing the stack image (built from this machine, never pulled)...');
  const stack = await createStackImage({ docker, logger: logger.child({ c: 'stack' }) });
  say(`Stack image ${stack.image}`);
  return DockerDriver.create({
    docker,
    instanceId: hostId,
    stackImage: stack.image,
    logger: logger.child({ c: 'docker' }),
  });
}
