// The docker option: buildImage of @flotilla/docker passed as it is (lines without newlines),
// the controller's own ImageBuilder over it. The real dockerd path runs in the PaaS's docker e2e.
import { isFlotillaError } from '@flotilla/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { LineImageBuildOptions } from './builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('ControllerOptions.docker', () => {
  it('builds a Dockerfile app with buildImage, each line streamed while it runs', async () => {
    const client = { name: 'the docker client' };
    const calls: LineImageBuildOptions[] = [];
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const buildImage = async (o: LineImageBuildOptions) => {
      calls.push(o);
      o.onOutput?.('Step 1/2 : FROM flotilla/stack');
      o.onOutput?.('Step 2/2 : CMD ["node", "server.js"]');
      await gate; // until the follower saw both lines
      o.onOutput?.('Successfully tagged');
      return {
        image: o.tag,
        id: 'sha256:0',
        processTypes: { web: 'node server.js' },
        baseImages: [],
      };
    };
    h = await harness({ controller: { docker: { buildImage, client } } });
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source({ Dockerfile: 'FROM flotilla/stack\n', 'server.js': '//\n' });
    const build = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    const lines: string[] = [];
    for await (const l of h.controller.buildOutput('demo', build.id)) {
      lines.push(l.line);
      if (l.line.startsWith('Step 2/2')) {
        expect((await h.controller.getBuild('demo', build.id)).status).toBe('running');
        openGate();
      }
    }
    const outcome = await h.controller.waitForDeploy('demo', build.id);
    expect(outcome.status, lines.join('\n')).toBe('live');
    expect(outcome.build).toMatchObject({
      builder: 'dockerfile',
      artifact: { type: 'image', image: `flotilla/demo:${build.id}` },
      processTypes: { web: 'node server.js' },
    });
    expect(lines).toEqual(
      expect.arrayContaining([
        'Step 1/2 : FROM flotilla/stack',
        'Step 2/2 : CMD ["node", "server.js"]',
        'Successfully tagged',
      ]),
    );
    expect(calls.length).toBe(1);
    expect(calls[0]?.docker).toBe(client);
    expect(calls[0]?.signal).toBeInstanceOf(AbortSignal);
    expect(typeof calls[0]?.logger?.child).toBe('function');
  });

  it('refuses a docker option without buildImage or client, or with a removeImage that is no function', async () => {
    for (const docker of [
      {},
      { buildImage: 'x', client: {} },
      { buildImage: () => undefined },
      { buildImage: () => undefined, client: {}, removeImage: 'docker rmi' },
      null,
    ])
      await expect(
        harness({ controller: { docker: docker as never } }).then(async (x) => {
          await x.close();
        }),
      ).rejects.toSatisfy(
        (e: unknown) =>
          isFlotillaError(e, 'FLOTILLA_CONTROLLER_INVALID_INPUT') &&
          (e as { path?: string }).path === 'docker',
      );
  });
});
