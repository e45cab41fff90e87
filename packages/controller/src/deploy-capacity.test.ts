// A deploy whose jobs cannot be placed says why in the user's terms and what to do: the process
// type, what each of its jobs asks for, what the hosts have, and the ways out (scale down, a
// smaller size, another host or more CPU/memory: the embedded server's --host-cpu/--host-memory).
// It said 'the cluster lacks capacity or matching hosts' and nothing about what to do.
import { afterEach, describe, expect, it } from 'vitest';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const APP = { Procfile: 'web: node server.js\n', 'server.js': '// server\n' };
let n = 0;

async function deploy(
  hh: Harness,
  app: string,
): Promise<{ status: string; reason?: string | undefined }> {
  const src = await hh.source({ ...APP, [`v${++n}.js`]: '//\n' });
  const build = await hh.controller.createBuild(app, { type: 'git', dir: src, sha: sha(n) });
  return hh.controller.waitForDeploy(app, build.id);
}

describe('a deploy that finds no room', () => {
  it('a job larger than any host: names the type, what it asks, the largest host, and what to do', async () => {
    h = await harness({
      controller: { deploy: { readyTimeoutMs: 300, stopTimeoutMs: 5000 } },
      agents: { hosts: ['h1'], capacity: { cpu: 300, memory: 4096 } },
    });
    await h.controller.createApp({ name: 'big' });
    const outcome = await deploy(h, 'big');
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.reason).toBe(
      'only 0 of 1 web job(s) were placed: each web job asks for 500 millicores and 512 MiB, ' +
        'more than any up host has in all (the largest, h1, has 300 millicores and 4096 MiB): ' +
        'give web a smaller size, or add a host, or give one more CPU and memory (the embedded ' +
        'server: --host-cpu <millis> and --host-memory <MiB>) within 300 ms',
    );
  });

  it('hosts full of other jobs: says how much is free, and to scale down or add room', async () => {
    h = await harness({
      controller: { deploy: { readyTimeoutMs: 300, stopTimeoutMs: 5000 } },
      agents: { hosts: ['h1'], capacity: { cpu: 1000, memory: 1024 } },
    });
    await h.controller.createApp({ name: 'first' });
    expect((await deploy(h, 'first')).status).toBe('live');
    await h.controller.patchFormation('first', { web: { quantity: 2 } });
    await expect
      .poll(
        async () =>
          (await h?.controller.listDynos('first'))?.filter((d) => d.state === 'up').length,
      )
      .toBe(2);
    await h.controller.createApp({ name: 'second' });
    const outcome = await deploy(h, 'second');
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.reason).toBe(
      'only 0 of 1 web job(s) were placed: each web job asks for 500 millicores and 512 MiB ' +
        '(1 in all), and the 1 up host(s) are full (the roomiest has 0 millicores and 0 MiB ' +
        'free): scale web or other apps down, give web a smaller size, or add a host, or give ' +
        'one more CPU and memory (the embedded server: --host-cpu <millis> and --host-memory ' +
        '<MiB>) within 300 ms',
    );
  });

  it('no host up: says to start one', async () => {
    h = await harness({
      controller: { deploy: { readyTimeoutMs: 300, stopTimeoutMs: 5000 } },
      agents: { hosts: [] },
    });
    await h.controller.createApp({ name: 'lonely' });
    const outcome = await deploy(h, 'lonely');
    expect(outcome.status).toBe('deploy-failed');
    expect(outcome.reason).toMatch(
      /^only 0 of 1 web job\(s\) were placed: no host is up \(none has registered\): start a host agent/,
    );
  });
});
