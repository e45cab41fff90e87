// A rolling deploy under continuous load through the real router: every request sent during
// the deploy is answered 200, and every response is counted.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Discovery } from '@flotilla/discovery';
import { RouteTable, Router, waitForDrained } from '@flotilla/router';
import { Scheduler } from '@flotilla/scheduler';
import { MemoryStore } from '@flotilla/store';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { ProcfileBuilder } from './procfile-builder.js';
import { realHost, type RealHost } from './test-support/real-host.js';

const SERVER = `
const http = require('http');
const server = http.createServer((req, res) => res.end(process.env.FLOTILLA_RELEASE));
server.keepAliveTimeout = 2000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

describe('a deploy under continuous load through @flotilla/router', () => {
  let dir: string;
  let store: MemoryStore;
  let discovery: Discovery;
  let scheduler: Scheduler;
  let router: Router;
  let host: RealHost;
  let controller: Controller;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-controller-load-'));
    store = new MemoryStore();
    discovery = new Discovery({ store });
    scheduler = new Scheduler({ store });
    await scheduler.start();
    router = new Router({ store, discovery });
    host = await realHost(store, join(dir, 'host'), {
      drainMs: 10_000,
      drainWait: (instance, signal) =>
        waitForDrained({
          store,
          discovery,
          service: instance.service,
          instanceId: instance.id,
          signal,
          timeoutMs: 10_000,
        }),
    });
    controller = new Controller({
      store,
      artifacts: new DirectoryArtifactStore({ dir: join(dir, 'artifacts') }),
      workDir: join(dir, 'work'),
      builder: new ProcfileBuilder(),
      routes: new RouteTable(store),
      baseDomain: 'apps.test',
      deploy: { readyTimeoutMs: 20_000, stopTimeoutMs: 20_000 },
    });
    await controller.start();
  });

  afterEach(async () => {
    await controller.close();
    await host.close();
    await router.close();
    await scheduler.close();
    await discovery.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers every request of 200 per second during a rolling restart: 0 failed, each counted', async () => {
    const { http } = await router.listen({ http: { port: 0, host: '127.0.0.1' } });
    const port = (http as { port: number }).port;
    await controller.createApp({ name: 'demo' });
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'Procfile'), 'web: node server.js\n');
    await writeFile(join(src, 'server.js'), SERVER);
    const build = await controller.createBuild('demo', {
      type: 'git',
      dir: src,
      sha: 'abcdef1234567',
    });
    expect((await controller.waitForBuild('demo', build.id)).status).toBe('succeeded');
    await controller.patchFormation('demo', { web: { quantity: 2 } });
    // Every job's state shows in a failure (a slow machine, a crash).
    await expect
      .poll(
        () =>
          controller
            .listDynos('demo')
            .then((d) =>
              d.map((x) => `${x.name}:${x.state}${x.message === undefined ? '' : ` ${x.message}`}`),
            ),
        { timeout: 40_000 },
      )
      .toEqual(['web.1:up', 'web.2:up']);

    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const counts = {
      sent: 0,
      ok: 0,
      failed: 0,
      byRelease: new Map<string, number>(),
      errors: [] as string[],
    };
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        counts.sent++;
        const req = request(
          { host: '127.0.0.1', port, path: '/', agent, headers: { host: 'demo.apps.test' } },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => {
              if (res.statusCode === 200) {
                counts.ok++;
                counts.byRelease.set(body, (counts.byRelease.get(body) ?? 0) + 1);
              } else {
                counts.failed++;
                counts.errors.push(`${res.statusCode}: ${body.slice(0, 100)}`);
              }
              resolve();
            });
            res.on('error', (err) => {
              counts.failed++;
              counts.errors.push(err.message);
              resolve();
            });
          },
        );
        req.on('error', (err) => {
          counts.failed++;
          counts.errors.push(err.message);
          resolve();
        });
        req.end();
      });
    // The route is live once a request through the router gets v1.
    await expect
      .poll(
        async () => {
          const before = counts.byRelease.get('v1') ?? 0;
          await one();
          return (counts.byRelease.get('v1') ?? 0) > before;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    counts.sent = counts.ok = counts.failed = 0;
    counts.byRelease.clear();
    counts.errors.length = 0;

    const inflight = new Set<Promise<void>>();
    const started = Date.now();
    let fired = 0;
    const timer = setInterval(() => {
      // 200 per second, catching up if the timer was late.
      const due = Math.floor(((Date.now() - started) / 1000) * 200);
      for (; fired < due; fired++) {
        const p = one().finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }, 5);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000)); // load on the old release
      await controller.patchConfig('demo', { DEPLOYED: 'yes' }); // v2: a rolling restart of both web jobs
      await new Promise((resolve) => setTimeout(resolve, 1000)); // and on the new one
    } finally {
      clearInterval(timer);
      await Promise.all(inflight);
      agent.destroy();
    }
    const elapsed = (Date.now() - started) / 1000;
    expect(counts.errors).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.ok).toBe(counts.sent);
    expect(counts.sent).toBeGreaterThan(150 * elapsed); // the load was kept up
    expect(counts.byRelease.get('v1')).toBeGreaterThan(0);
    expect(counts.byRelease.get('v2')).toBeGreaterThan(0);
    expect(counts.ok).toBe((counts.byRelease.get('v1') ?? 0) + (counts.byRelease.get('v2') ?? 0));
    expect(
      (await controller.listDynos('demo')).filter((d) => d.state === 'up').map((d) => d.release),
    ).toEqual(['v2', 'v2']);
  }, 120_000);
});
