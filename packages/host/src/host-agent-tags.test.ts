// What a host advertises of its driver: the agent adds `flotilla.artifact.image: 'true'` to its
// host record when the driver runs images, so image releases can be constrained to such hosts;
// operators' tags cannot claim it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterState } from '@flotilla/cluster';
import { isFlotillaError } from '@flotilla/core';
import { Discovery } from '@flotilla/discovery';
import { MemoryStore } from '@flotilla/store';
import { ArtifactCache } from './artifact-cache.js';
import type { Driver } from './driver.js';
import { IMAGE_HOST_TAG } from './driver-tags.js';
import { HostAgent, type HostAgentOptions } from './host-agent.js';
import { ProcessDriver } from './process-driver.js';
import { FakeDriver } from './testing/fake-driver.js';
import { claimPortRange } from '../../../test/support/port-slots.js';

describe('HostAgent: host tags from its driver', () => {
  let dir: string;
  let store: MemoryStore;
  let cluster: ClusterState;
  let discovery: Discovery;
  const agents: HostAgent[] = [];
  const drivers: Driver[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-agent-tags-'));
    store = new MemoryStore();
    cluster = new ClusterState({ store });
    discovery = new Discovery({ store });
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close().catch(() => undefined);
    for (const d of drivers.splice(0)) await d.close();
    await discovery.close();
    await cluster.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function agent(driver: Driver, extra: Partial<HostAgentOptions> = {}): Promise<HostAgent> {
    drivers.push(driver);
    const a = new HostAgent({
      id: 'h1',
      store,
      driver,
      address: '127.0.0.1:7000',
      capacity: { cpu: 4000, memory: 8192 },
      ports: await claimPortRange(4),
      artifacts: new ArtifactCache({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'run'),
      discovery,
      ...extra,
    });
    agents.push(a);
    return a;
  }

  async function registeredTags(): Promise<Readonly<Record<string, string>> | undefined> {
    const [host] = await cluster.hosts();
    expect(host?.record.id).toBe('h1');
    return host?.record.tags;
  }

  it('a driver that runs images: the host record carries flotilla.artifact.image beside the operator tags', async () => {
    const a = await agent(new FakeDriver({ runsImages: true }), { tags: { zone: 'a' } });
    await a.start();
    expect(await registeredTags()).toEqual({ zone: 'a', [IMAGE_HOST_TAG]: 'true' });
    expect(IMAGE_HOST_TAG).toBe('flotilla.artifact.image');
  });

  it('a driver that runs images, no operator tags: the record has the image tag alone', async () => {
    const a = await agent(new FakeDriver({ runsImages: true }));
    await a.start();
    expect(await registeredTags()).toEqual({ [IMAGE_HOST_TAG]: 'true' });
  });

  it('the process driver runs slugs only: no image tag, the operator tags as given', async () => {
    const driver = await ProcessDriver.create({ stateDir: join(dir, 'jobs') });
    expect(driver.runsImages).toBe(false);
    const a = await agent(driver, { tags: { zone: 'b' } });
    await a.start();
    expect(await registeredTags()).toEqual({ zone: 'b' });
  });

  it('a host restarted on a driver that runs slugs only loses the image tag', async () => {
    const first = await agent(new FakeDriver({ runsImages: true }), { tags: { zone: 'a' } });
    await first.start();
    expect(await registeredTags()).toEqual({ zone: 'a', [IMAGE_HOST_TAG]: 'true' });
    await first.close();
    const second = await agent(await ProcessDriver.create({ stateDir: join(dir, 'jobs') }), {
      tags: { zone: 'a' },
    });
    await second.start();
    expect(await registeredTags()).toEqual({ zone: 'a' });
  });

  it('refuses operator tags that start with flotilla. (a process host cannot claim to run images), and more than 64 tags with the driver', async () => {
    const processHost = await ProcessDriver.create({ stateDir: join(dir, 'jobs') });
    drivers.push(processHost);
    const refused = async (
      driver: Driver,
      tags: unknown,
      message: RegExp,
      path: string,
    ): Promise<void> => {
      let caught: unknown;
      try {
        await agent(driver, { tags: tags as Record<string, string> });
      } catch (err) {
        caught = err;
      }
      expect(isFlotillaError(caught, 'FLOTILLA_HOST_INVALID_OPTIONS'), String(caught)).toBe(true);
      expect((caught as Error).message).toMatch(message);
      expect((caught as { path?: string }).path).toBe(path);
    };
    await refused(
      processHost,
      { [IMAGE_HOST_TAG]: 'true' },
      /starts with flotilla\..*rename it/,
      `tags.${IMAGE_HOST_TAG}`,
    );
    await refused(
      processHost,
      { 'flotilla.zone': 'a' },
      /starts with flotilla\./,
      'tags.flotilla.zone',
    );
    const sixtyFour = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`t${i}`, 'x']));
    await refused(
      new FakeDriver({ runsImages: true }),
      sixtyFour,
      /at most 64 tags.*64 with the driver's 1 make 65/,
      'tags',
    );
    await refused(processHost, 'zone=a', /tags must be an object/, 'tags');
    await refused(processHost, ['zone'], /tags must be an object/, 'tags');
    // 64 of the operator's on a driver that adds none are fine (the cluster's own limit).
    const a = await agent(processHost, { tags: sixtyFour });
    await a.start();
    expect(Object.keys((await registeredTags()) ?? {}).length).toBe(64);
    // Nothing was registered by the refused ones.
    expect((await cluster.hosts()).length).toBe(1);
  });

  it('refuses tag names and values the host record cannot hold, as its TSDoc states, naming the tag and what to use', async () => {
    const driver = new FakeDriver({ runsImages: false });
    const refused = async (tags: unknown, message: RegExp, path: string): Promise<void> => {
      let caught: unknown;
      try {
        await agent(driver, { tags: tags as Record<string, string> });
      } catch (err) {
        caught = err;
      }
      expect(isFlotillaError(caught, 'FLOTILLA_HOST_INVALID_OPTIONS'), String(caught)).toBe(true);
      expect((caught as Error).message).toMatch(message);
      expect((caught as { path?: string }).path).toBe(path);
    };
    const what =
      /use 1 to 63 characters from A-Z a-z 0-9 \. _ \/ -, starting with a letter or digit/;
    const long = 'z'.repeat(64);
    await refused({ [long]: 'a' }, what, `tags.${long}`);
    await refused({ '': 'a' }, what, 'tags.');
    await refused({ 'my zone': 'a' }, what, 'tags.my zone');
    await refused({ 'zone\0': 'a' }, what, 'tags.zone\0');
    await refused({ '-zone': 'a' }, what, 'tags.-zone');
    await refused({ '.zone': 'a' }, what, 'tags..zone');
    await refused({ zoné: 'a' }, what, 'tags.zoné');
    await refused({ ['x'.repeat(10_000)]: 'a' }, what, `tags.${'x'.repeat(80)}`);
    const value = /give a string of at most 256 characters without NUL/;
    await refused({ zone: 'a'.repeat(257) }, value, 'tags.zone');
    await refused({ zone: 'a\0b' }, value, 'tags.zone');
    await refused({ zone: 7 }, value, 'tags.zone');
    await refused({ zone: null }, value, 'tags.zone');
    // A hundred thousand tags: refused by their count, before any name is looked at.
    const many = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`t${i}`, 'x']));
    await refused(many, /at most 64 tags/, 'tags');
    // Nothing was registered by the refused ones; names at the limits are fine.
    expect(await cluster.hosts()).toEqual([]);
    const edge = {
      ['z'.repeat(63)]: 'a'.repeat(256),
      'topology.kubernetes.io/zone': 'a',
      '9_x': '',
    };
    const a = await agent(driver, { tags: edge });
    await a.start();
    expect(await registeredTags()).toEqual(edge);
  });
});
