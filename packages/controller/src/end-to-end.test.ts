// The controller over real parts: a Scheduler, a HostAgent running jobs with the ProcessDriver
// (real node processes serving HTTP on loopback), slugs in a directory artifact store, one-off
// jobs with the DriverOneOffRunner.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { Scheduler } from '@flotilla/scheduler';
import { MemoryStore } from '@flotilla/store';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { ProcfileBuilder } from './procfile-builder.js';
import type { RunOutputLine } from './one-off.js';
import { MemoryRouteTable } from './testing/memory-route-table.js';
import { realHost, type RealHost } from './test-support/real-host.js';

const SERVER = `
const http = require('http');
if (process.env.BOOM === '1') { console.error('boom: refusing to start'); process.exit(4); }
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ release: process.env.FLOTILLA_RELEASE, greeting: process.env.GREETING || null }));
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening on ' + process.env.PORT));
`;
/**
 * The driver's message for a job a stop ended: by the signal (or the exit it caused), or by the
 * SIGKILL after the grace when the job outlived it.
 */
const STOPPED =
  /was stopped( with SIGTERM|: still running \d+ ms after SIGTERM, killed by SIGKILL)/;

const RELEASE = `
console.log('migrating with ' + (process.env.GREETING || 'nothing'));
process.exit(Number(process.env.RELEASE_EXIT || 0));
`;

function get(port: number): Promise<{ release: string; greeting: string | null }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as { release: string; greeting: string | null });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Controller end to end: real HostAgent, ProcessDriver, node processes', () => {
  let dir: string;
  let store: MemoryStore;
  let scheduler: Scheduler;
  let host: RealHost;
  let controller: Controller;
  let artifacts: DirectoryArtifactStore;
  let n = 0;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-controller-e2e-'));
    store = new MemoryStore();
    scheduler = new Scheduler({ store, restartBackoffMs: [60_000] });
    await scheduler.start();
    host = await realHost(store, join(dir, 'host'));
    artifacts = new DirectoryArtifactStore({ dir: join(dir, 'artifacts') });
    controller = new Controller({
      store,
      artifacts,
      workDir: join(dir, 'work'),
      builder: new ProcfileBuilder(),
      runner: host.runner,
      logs: host.logs,
      routes: new MemoryRouteTable(),
      deploy: { readyTimeoutMs: 30_000, stopTimeoutMs: 30_000 },
    });
    await controller.start();
  });

  afterEach(async () => {
    await controller.close();
    await host.close();
    await scheduler.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function source(files: Record<string, string>): Promise<string> {
    const src = join(dir, `src-${n++}`);
    await mkdir(src, { recursive: true });
    for (const [name, content] of Object.entries(files)) await writeFile(join(src, name), content);
    return src;
  }

  async function push(app: string, files: Record<string, string>): Promise<string[]> {
    const build = await controller.createBuild(app, {
      type: 'git',
      dir: await source(files),
      sha: 'abcdef1234567',
    });
    const lines: string[] = [];
    for await (const l of controller.buildOutput(app, build.id)) lines.push(l.line);
    return lines;
  }

  async function serving(app: string): Promise<{ release: string; greeting: string | null }[]> {
    const up = (await controller.listDynos(app)).filter(
      (d) => d.type === 'web' && d.state === 'up',
    );
    return Promise.all(up.map((d) => get(d.port as number)));
  }

  it('builds, deploys, serves; a config change rolls onto v2; a crashing deploy rolls back; rollback', async () => {
    await controller.createApp({ name: 'demo' });
    const out = await push('demo', { Procfile: 'web: node server.js\n', 'server.js': SERVER });
    expect(out).toContain('       Deployed v1');
    expect(await serving('demo')).toEqual([{ release: 'v1', greeting: null }]);

    await controller.patchConfig('demo', { GREETING: 'hello' });
    expect(await serving('demo')).toEqual([{ release: 'v2', greeting: 'hello' }]);
    expect(
      (await controller.listDynos('demo')).filter((d) => d.state !== 'down').map((d) => d.release),
    ).toEqual(['v2']);

    const err = await controller.patchConfig('demo', { BOOM: '1' }).catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_DEPLOY_FAILED')).toBe(true);
    const failed = (
      err as { deployment?: { failedJobs?: { exitStatus?: number; logs: string[] }[] } }
    ).deployment?.failedJobs?.[0];
    expect(failed?.exitStatus).toBe(4);
    expect(failed?.logs).toContain('boom: refusing to start');
    // The old release kept serving all along.
    expect(await serving('demo')).toEqual([{ release: 'v2', greeting: 'hello' }]);

    const back = await controller.rollback('demo', 'v1');
    expect(back.id).toBe('v4');
    expect(await serving('demo')).toEqual([{ release: 'v4', greeting: null }]);

    // Destroy: its process is stopped (its port refuses), its slug and records are gone.
    const port = (await controller.listDynos('demo')).find((d) => d.state === 'up')?.port as number;
    await controller.destroyApp('demo');
    expect(
      await get(port).then(
        () => 'answered',
        (e: NodeJS.ErrnoException) => e.code,
      ),
    ).toBe('ECONNREFUSED');
    expect(await artifacts.list()).toEqual([]);
    expect((await store.list('controller/')).kvs.filter((kv) => kv.key.includes('demo'))).toEqual(
      [],
    );
  });

  it('runs a one-off command in the release environment, streaming output and returning its exit status', async () => {
    await controller.createApp({ name: 'demo' });
    await controller.patchConfig('demo', { GREETING: 'hi there' });
    await push('demo', { Procfile: 'web: node server.js\n', 'server.js': SERVER });
    const run = await controller.run('demo', {
      command: 'echo "$GREETING from $DYNO"; ls server.js; echo oops >&2; exit 7',
    });
    const lines: RunOutputLine[] = [];
    for await (const l of run.output) lines.push(l);
    const exit = await run.exit;
    expect(exit).toMatchObject({ code: 7, timedOut: false });
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line)).toEqual([
      'hi there from run.1',
      'server.js',
    ]);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.line)).toEqual(['oops']);
    // All of a fast command's output, in order: it waits for its reader, none is lost.
    const many = await controller.run('demo', { command: 'seq 1 30000' });
    const got: string[] = [];
    const other: RunOutputLine[] = [];
    for await (const l of many.output) {
      if (l.stream === 'stdout') got.push(l.line);
      else other.push(l);
    }
    expect(await many.exit).toMatchObject({ code: 0 });
    expect(got.length).toBe(30_000);
    expect(got.every((line, i) => line === String(i + 1))).toBe(true);
    expect(other.map((l) => l.line).join('\n')).not.toMatch(/lost|dropped/);
    // A consumer that stops reading early does not keep the run from ending.
    const left = await controller.run('demo', { command: 'seq 1 50000' });
    for await (const l of left.output) if (l.line === '1') break;
    expect(await left.exit).toMatchObject({ code: 0 });
    // Its timeout stops it. A SIGTERM 200 ms after the start can come before bash runs
    // `sleep` (bash then exits with 0), or between its fork and exec (lost: the SIGKILL after
    // the grace ends it): the driver's message says it was stopped, whichever ended it.
    const slow = await controller.run('demo', { command: 'sleep 30', timeoutMs: 200 });
    const slowExit = await slow.exit;
    expect(slowExit.timedOut).toBe(true);
    expect(slowExit.message).toMatch(STOPPED);
    // A run stopped (here by its timeout) ends though its output, more than the runner
    // holds, is never read: the stop releases the paced reader.
    const unread = await controller.run('demo', {
      command: 'seq 1 20000; sleep 30',
      // All 20,000 lines are written before the timeout, also on a loaded machine (bash's
      // start and seq take tens of ms unloaded).
      timeoutMs: 2000,
    });
    const unreadExit = await Promise.race([
      unread.exit,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000)),
    ]);
    expect(unreadExit).toMatchObject({ timedOut: true, message: expect.stringMatching(STOPPED) });
    // What it holds for a reader that comes late is bounded (the runner's maxBufferedLines,
    // 10,000 by default): the newest lines, and a line that says how many were dropped.
    const held: RunOutputLine[] = [];
    for await (const l of unread.output) held.push(l);
    const kept = held.filter((l) => l.stream === 'stdout').map((l) => l.line);
    expect(held.length).toBeLessThanOrEqual(10_001);
    expect(kept.at(-1)).toBe('20000');
    expect(kept.length).toBeLessThan(20_000);
    const gap = held.find((l) => l.stream === 'system' && l.line.includes('not shown'));
    expect(gap?.line).toMatch(/^\d+ line\(s\) of output not shown: the run was stopped/);
    // Nor does one that ends by itself: its exit does not wait for a reader.
    const ended = await controller.run('demo', { command: 'seq 1 20000' });
    expect(
      await Promise.race([
        ended.exit,
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000)),
      ]),
    ).toMatchObject({ code: 0, timedOut: false });
    // The output is still all there for a reader that comes late.
    let count = 0;
    for await (const l of ended.output) if (l.stream === 'stdout') count++;
    expect(count).toBe(20_000);
  });

  it('runs the release phase before a release goes live; its failure stops the deploy', async () => {
    await controller.createApp({ name: 'demo' });
    await controller.patchConfig('demo', { GREETING: 'v1 data' });
    const out = await push('demo', {
      Procfile: 'web: node server.js\nrelease: node release.js\n',
      'server.js': SERVER,
      'release.js': RELEASE,
    });
    expect(out).toContain('       migrating with v1 data');
    expect(out.indexOf('       migrating with v1 data')).toBeLessThan(
      out.indexOf('       Deployed v2'),
    );
    expect(await serving('demo')).toEqual([{ release: 'v2', greeting: 'v1 data' }]);
    const err = await controller
      .patchConfig('demo', { RELEASE_EXIT: '3', GREETING: 'bad' })
      .catch((e: unknown) => e);
    expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_RELEASE_PHASE_FAILED')).toBe(true);
    expect((err as Error).message).toContain('migrating with bad');
    expect(await serving('demo')).toEqual([{ release: 'v2', greeting: 'v1 data' }]);
    expect((await controller.getFormation('demo')).map((f) => f.type)).toEqual(['web']);
  });
});
