// Shared by the host agent's cross-package tests: a hello app in a slug, agents with their own
// drivers, and a wait on discovery that follows its events (no polling, no sleeps).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClusterState } from '@flotilla/cluster';
import type { Discovery, ServiceInstance } from '@flotilla/discovery';
import { ArtifactCache, HostAgent, ProcessDriver, type HostAgentOptions } from '@flotilla/host';
import { packSlug } from '@flotilla/slug';
import type { Store } from '@flotilla/store';

/** A hello app: answers `hello from <DYNO>` on `PORT`, exits 0 on SIGTERM. */
export const HELLO_SERVER = `
const http = require('http');
const server = http.createServer((req, res) => res.end('hello from ' + process.env.DYNO));
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** Packs the hello app into `<dir>/hello.tgz`; its release artifact. */
export async function helloSlug(
  dir: string,
): Promise<{ type: 'slug'; url: string; sha256: string; size: number }> {
  await mkdir(join(dir, 'hello'), { recursive: true });
  await writeFile(join(dir, 'hello', 'server.js'), HELLO_SERVER);
  const packed = await packSlug(join(dir, 'hello'), join(dir, 'hello.tgz'));
  return {
    type: 'slug',
    url: pathToFileURL(packed.path).href,
    sha256: packed.sha256,
    size: packed.size,
  };
}

/** Writes the hello release and a formation of `count` web jobs. */
export async function deployHello(store: Store, dir: string, count: number): Promise<void> {
  const cluster = new ClusterState({ store });
  try {
    await cluster.putRelease({
      app: 'demo',
      release: 'v1',
      artifact: await helloSlug(dir),
      config: {},
      processes: { web: { command: 'exec node server.js', stopGraceMs: 2000 } },
      createdAt: Date.now(),
    });
    await cluster.setFormation({
      app: 'demo',
      release: 'v1',
      processes: { web: { count, resources: { cpu: 100, memory: 128 } } },
    });
  } finally {
    await cluster.close();
  }
}

/** A host agent with a ProcessDriver of its own, on `<dir>/state-<id>` and `<dir>/run-<id>`. */
export async function hostAgent(
  dir: string,
  id: string,
  options: Pick<HostAgentOptions, 'store' | 'ports'> & Partial<HostAgentOptions>,
): Promise<{ agent: HostAgent; driver: ProcessDriver }> {
  const driver = await ProcessDriver.create({ stateDir: join(dir, `state-${id}`), logPollMs: 50 });
  const agent = new HostAgent({
    id,
    driver,
    address: '127.0.0.1:7000',
    capacity: { cpu: 1000, memory: 1024 },
    artifacts: new ArtifactCache({ dir: join(dir, `artifacts-${id}`) }),
    workDir: join(dir, `run-${id}`),
    heartbeatTtlMs: 1000,
    drainMs: 0,
    ...options,
  });
  agent.on('error', () => undefined); // partitions and kills make errors; the tests assert outcomes
  return { agent, driver };
}

/** Stops every job a driver runs and closes it; for cleanup, never throws. */
export async function stopAll(driver: ProcessDriver | undefined): Promise<void> {
  if (driver === undefined) return;
  for (const job of await driver.list().catch(() => []))
    await driver.stop(job.id, { graceMs: 0 }).catch(() => undefined);
  await driver.close().catch(() => undefined);
}

/**
 * Follows a service's instances in discovery until the ready ones satisfy `done`, and returns
 * them. Fails when `timeoutMs` passes first, saying what it last saw.
 */
export async function untilReady(
  discovery: Discovery,
  service: string,
  done: (ready: ServiceInstance[]) => boolean,
  timeoutMs = 20_000,
): Promise<ServiceInstance[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const all = new Map<string, ServiceInstance>();
  const ready = (): ServiceInstance[] =>
    [...all.values()].filter((i) => i.ready).sort((a, b) => a.id.localeCompare(b.id));
  try {
    for await (const ev of discovery.watch(service, { signal })) {
      if (ev.kind === 'current') {
        all.clear();
        for (const i of ev.instances) all.set(i.id, i);
      } else if (ev.kind === 'up' || ev.kind === 'update') all.set(ev.instance.id, ev.instance);
      else if (ev.kind === 'down') all.delete(ev.instance.id);
      if (done(ready())) return ready();
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
  throw new Error(
    `discovery never reached the expected state within ${timeoutMs} ms; ready: ${JSON.stringify(
      ready().map((i) => ({ id: i.id, host: i.meta.host, addr: i.addr })),
    )}`,
  );
}

/** What each ready instance answers over HTTP. */
export async function answers(instances: ServiceInstance[]): Promise<string[]> {
  return Promise.all(instances.map(async (i) => (await fetch(`http://${i.addr}/`)).text()));
}

/**
 * `promise`, or a rejection naming `what` after `ms`: a wait that fails in time for the test's
 * own cleanup (`finally`) to run, which a test timeout would skip.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
