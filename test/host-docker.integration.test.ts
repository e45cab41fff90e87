// The HostAgent with DockerDriver on a real dockerd: a slug release runs in the stack image, an
// image release runs from its image (no slug fetched, an empty scratch dir), both answer on
// 127.0.0.1 once ready in discovery; the image job gets the job's CPU and memory limits.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterState, type JobRecord } from '@flotilla/cluster';
import { Discovery } from '@flotilla/discovery';
import { createStackImage, DockerDriver } from '@flotilla/docker';
import { ArtifactCache, HostAgent } from '@flotilla/host';
import { MemoryStore } from '@flotilla/store';
import { dockerClient, releaseDocker, sweepDocker, testRunId } from './support/docker.js';
import { answers, helloSlug, untilReady } from './host-support.js';
import { claimPortRange } from './support/port-slots.js';

const runId = testRunId('host-docker');
let docker: Docker;
let stackImage: string;

beforeAll(async () => {
  docker = await dockerClient();
  stackImage = (await createStackImage({ docker })).image;
}, 300_000);

afterAll(async () => {
  await sweepDocker(docker, runId);
  await releaseDocker();
});

describe('HostAgent with DockerDriver', () => {
  it('runs a slug release in the stack image and an image release from its image, ready in discovery', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-host-docker-'));
    const store = new MemoryStore();
    const cluster = new ClusterState({ store });
    const discovery = new Discovery({ store });
    const driver = await DockerDriver.create({
      docker,
      instanceId: `host-docker-${process.pid}`,
      stackImage,
      labels: { 'flotilla.test': runId },
    });
    const fetched: string[] = [];
    const agent = new HostAgent({
      id: 'h1',
      store,
      driver,
      address: '127.0.0.1:7000',
      capacity: { cpu: 2000, memory: 2048 },
      ports: await claimPortRange(10),
      artifacts: new ArtifactCache({
        dir: join(dir, 'artifacts'),
        fetch: async (url) => {
          fetched.push(String(url));
          throw new Error('nothing is fetched over http here');
        },
      }),
      workDir: join(dir, 'run'),
      discovery,
      drainMs: 0,
    });
    try {
      await agent.start();
      await cluster.putRelease({
        app: 'slugapp',
        release: 'v1',
        artifact: await helloSlug(dir),
        config: {},
        processes: { web: { command: 'exec node server.js', stopGraceMs: 2000 } },
        createdAt: Date.now(),
      });
      await cluster.putRelease({
        app: 'imageapp',
        release: 'v1',
        artifact: { type: 'image', image: stackImage },
        config: { GREETING: 'from an image' },
        processes: {
          web: {
            command: `exec node -e "require('http').createServer((q, s) => s.end(process.env.GREETING + ' in ' + process.cwd())).listen(Number(process.env.PORT), '127.0.0.1')"`,
            stopGraceMs: 2000,
          },
        },
        createdAt: Date.now(),
      });
      const assign = async (app: string, id: string): Promise<void> => {
        const record: JobRecord = {
          id,
          app,
          release: 'v1',
          type: 'web',
          hostId: 'h1',
          index: 1,
          resources: { cpu: 500, memory: 256 },
          desired: 'run',
          createdAt: Date.now(),
        };
        await store.put(cluster.keys.job('h1', id), JSON.stringify(record));
      };
      await assign('slugapp', 'web.slug');
      await assign('imageapp', 'web.image');
      const slugJobs = await untilReady(discovery, 'slugapp-web', (r) => r.length === 1, 45_000);
      const imageJobs = await untilReady(discovery, 'imageapp-web', (r) => r.length === 1, 45_000);
      expect(await answers(slugJobs)).toEqual(['hello from web.1']);
      const [greeting] = await answers(imageJobs);
      expect(greeting).toMatch(/^from an image in \//);
      expect(fetched).toEqual([]);
      // The image job's scratch dir is empty; the slug job's holds the extracted app.
      expect(await readdir(join(dir, 'run', 'web.image'))).toEqual([]);
      expect(await readdir(join(dir, 'run', 'web.slug'))).toContain('server.js');
      // Its container got the job's limits.
      const [container] = await docker.listContainers({
        filters: JSON.stringify({ label: [`flotilla.test=${runId}`, 'flotilla.job=web.image'] }),
      });
      const inspected = await docker.getContainer(container?.Id ?? 'none').inspect();
      expect(inspected.Config.Image).toBe(stackImage);
      expect(inspected.HostConfig.Memory).toBe(256 * 1024 * 1024);
      expect(inspected.HostConfig.NanoCpus).toBe(500_000_000);
    } finally {
      await agent.close({ stopJobs: true }).catch(() => undefined);
      await driver.close().catch(() => undefined);
      await discovery.close();
      await cluster.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
