// The dockerd a Docker integration suite runs against: FLOTILLA_DOCKER_HOST (set by `npm test`
// through scripts/services.mjs), the system's on /var/run/docker.sock, or our own started by
// scripts/docker.mjs for this run. Fails, never skips, when Docker cannot be had.
import Docker from 'dockerode';
import { Demuxer } from '../../packages/docker/src/internal/demux.js';
import { acquireDocker } from '../../scripts/docker.mjs';

let acquired: ReturnType<typeof acquireDocker> | undefined;

/** The socket path of the dockerd to test against. Call from beforeAll; pair with {@link releaseDocker}. */
export async function dockerSocket(): Promise<string> {
  acquired ??= acquireDocker();
  try {
    return (await acquired).socketPath;
  } catch (err) {
    acquired = undefined;
    throw new Error(`this suite needs a dockerd: ${(err as Error).message}`, { cause: err });
  }
}

/** A dockerode client on {@link dockerSocket}. */
export async function dockerClient(): Promise<Docker> {
  return new Docker({ socketPath: await dockerSocket() });
}

/** Stops the dockerd this file started, when no other suite uses it. */
export async function releaseDocker(): Promise<void> {
  if (acquired === undefined) return;
  const a = acquired;
  acquired = undefined;
  await (await a).release();
}

/** A label value unique to this test file's run: everything a suite creates carries it. */
export function testRunId(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}`;
}

/**
 * Removes every container, then image and volume, labelled `flotilla.test=<runId>`: call from
 * afterAll so that what a failed test left behind goes too.
 */
export async function sweepDocker(docker: Docker, runId: string): Promise<void> {
  const filters = JSON.stringify({ label: [`flotilla.test=${runId}`] });
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
  for (const image of await docker.listImages({ filters })) {
    await docker
      .getImage(image.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    await docker
      .getVolume(v.Name)
      .remove({ force: true })
      .catch(() => undefined);
  }
}

/** What {@link runContainer} saw. */
export interface ContainerRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `cmd` in a fresh container of `image` (labelled for the sweep) to its end and returns
 * its exit code and output; the container is removed afterwards.
 */
export async function runContainer(
  docker: Docker,
  image: string,
  cmd: string[],
  options: { runId: string; user?: string; binds?: string[]; env?: string[] },
): Promise<ContainerRun> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    User: options.user ?? '',
    Env: options.env ?? [],
    Labels: { 'flotilla.test': options.runId },
    HostConfig: { NetworkMode: 'host', Binds: options.binds ?? [] },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as Buffer;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    new Demuxer((stream, bytes) => (stream === 'stderr' ? err : out).push(bytes)).write(raw);
    return {
      code: StatusCode,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
    };
  } finally {
    await container.remove({ force: true });
  }
}
