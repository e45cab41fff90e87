// The default builder: @flotilla/buildpack, imported at the first build (its bundled procfile
// buildpack, run as local processes).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, sha, waitingBuildpack, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('the default builder (@flotilla/buildpack)', () => {
  it('builds a Procfile app with the bundled buildpack, output line by line, and deploys it', async () => {
    h = await harness({ defaultBuilder: true });
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source({ Procfile: 'web: node server.js\n', 'server.js': '// serve\n' });
    const build = await h.controller.createBuild('demo', { type: 'git', dir: src, sha: sha(1) });
    const lines: string[] = [];
    for await (const l of h.controller.buildOutput('demo', build.id)) lines.push(l.line);
    const done = await h.controller.getBuild('demo', build.id);
    expect(done.status, lines.join('\n')).toBe('succeeded');
    expect(done.buildpacks?.map((b) => b.name)).toEqual(['Procfile']);
    expect(done.processTypes).toEqual({ web: 'node server.js' });
    // Each line of the buildpack's output is a line of the build's (none run together).
    expect(lines.every((l) => !l.includes('----->', 7))).toBe(true);
    expect(lines).toContain('       Deployed v1');
  });

  it('streams each line to buildOutput followers while the build is still running', async () => {
    h = await harness({ defaultBuilder: true });
    const pack = await waitingBuildpack(join(h.dir, 'waiting-pack'));
    await h.controller.createApp({ name: 'demo' });
    const src = await h.source({ Procfile: 'web: node server.js\n', 'server.js': '// serve\n' });
    const build = await h.controller.createBuild(
      'demo',
      { type: 'git', dir: src, sha: sha(2) },
      { buildpacks: [pack.dir] },
    );
    const seen: string[] = [];
    let statusAtStarted: string | undefined;
    for await (const l of h.controller.buildOutput('demo', build.id)) {
      seen.push(l.line);
      if (l.line === '       started') {
        // The build cannot end before `go` exists: this line came while it ran.
        statusAtStarted = (await h.controller.getBuild('demo', build.id)).status;
        await writeFile(pack.go, '');
      }
    }
    expect(statusAtStarted, seen.join('\n')).toBe('running');
    expect(seen).toContain('-----> Compiling');
    expect(seen.indexOf('       finished')).toBeGreaterThan(seen.indexOf('       started'));
    expect((await h.controller.getBuild('demo', build.id)).status).toBe('succeeded');
  });
});
