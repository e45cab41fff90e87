// collectArtifacts with an image builder that lists and removes images: the images of
// Dockerfile builds no release keeps go, as their slugs do; nothing else on dockerd is touched.
import { afterEach, describe, expect, it } from 'vitest';
import type { LineImageBuildOptions } from './builder.js';
import { harness, sha, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const DOCKER_APP = { Dockerfile: 'FROM flotilla/stack\n', 'server.js': '// server\n' };

/** What dockerd would hold, and the docker option of the controller over it. */
function fakeDocker(initial: string[]): {
  images: Set<string>;
  gate: { hold: boolean; release: () => void; started: Promise<string> };
  docker: {
    client: object;
    buildImage: (
      o: LineImageBuildOptions,
    ) => Promise<{ image: string; processTypes: Record<string, string> }>;
    removeImage: (o: { image: string }) => Promise<boolean>;
    listImageTags: (o: { reference: string }) => Promise<string[]>;
  };
} {
  const images = new Set(initial);
  let release!: () => void;
  let started!: (tag: string) => void;
  const gate = {
    hold: false,
    release: () => release(),
    started: new Promise<string>((resolve) => (started = resolve)),
  };
  const held = new Promise<void>((resolve) => (release = resolve));
  return {
    images,
    gate,
    docker: {
      client: {},
      buildImage: async (o) => {
        images.add(o.tag); // dockerd tags as the build ends; held here with the tag made
        if (gate.hold) {
          started(o.tag);
          await held;
        }
        return { image: o.tag, processTypes: { web: 'node server.js' } };
      },
      removeImage: async (o) => images.delete(o.image),
      listImageTags: async (o) => {
        expect(o.reference).toBe('flotilla/*');
        return [...images].filter((t) => /^flotilla\/[^/:]+:/.test(t)).sort();
      },
    },
  };
}

describe('collectArtifacts: images', () => {
  it('removes the images of builds no release keeps and of apps gone; keeps the live one, one in flight, and everything not a build image', async () => {
    const others = [
      'flotilla/stack:0123456789ab',
      'flotilla/stack:latest',
      'library/node:b-0123456789ab',
      'flotilla/demo:handmade',
    ];
    const gone = 'flotilla/ghost:b-0123456789ab';
    const d = fakeDocker([...others, gone]);
    h = await harness({ controller: { docker: d.docker, keepReleases: 1 } });
    await h.controller.createApp({ name: 'demo' });
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const src = await h.source({ ...DOCKER_APP, [`v${i}.js`]: '//\n' });
      const b = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(i) });
      expect((await h.controller.waitForDeploy('demo', b.id)).status).toBe('live');
      ids.push(b.id);
    }
    // A fourth build is running: its image is tagged, its build not recorded as ended.
    d.gate.hold = true;
    const src = await h.source({ ...DOCKER_APP, 'v4.js': '//\n' });
    const fourth = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(4) });
    expect(await d.gate.started).toBe(`flotilla/demo:${fourth.id}`);

    await h.controller.collectArtifacts();
    expect([...d.images].sort()).toEqual(
      [...others, `flotilla/demo:${ids[2]}`, `flotilla/demo:${fourth.id}`].sort(),
    );
    d.gate.release();
    expect((await h.controller.waitForDeploy('demo', fourth.id)).status).toBe('live');
    await h.controller.collectArtifacts();
    expect([...d.images].sort()).toEqual([...others, `flotilla/demo:${fourth.id}`].sort());
  });
});
