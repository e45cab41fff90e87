// baseDomain: every app answers at <app>.<baseDomain>, a single label (localhost) included.
import { isFlotillaError } from '@flotilla/core';
import { MemoryStore } from '@flotilla/store';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from './controller.js';
import { DirectoryArtifactStore } from './directory-artifact-store.js';
import { harness, type Harness } from './test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('baseDomain', () => {
  it('localhost: apps answer at <app>.localhost, a default domain with its route', async () => {
    h = await harness({ controller: { baseDomain: 'LocalHost.' } });
    await h.controller.createApp({ name: 'demo' });
    const domains = await h.controller.listDomains('demo');
    expect(domains.map((d) => [d.hostname, d.kind])).toEqual([['demo.localhost', 'default']]);
    expect((await h.routes.list({ service: 'demo-web' })).map((r) => r.domain)).toEqual([
      'demo.localhost',
    ]);
    // Destroyed: the default domain and its route go with the app.
    await h.controller.destroyApp('demo');
    expect(await h.controller.listApps()).toEqual([]);
    expect((await h.routes.list({ service: 'demo-web' })).length).toBe(0);
  });

  it('refuses custom domains under the base domain: no app squats another name or all of them', async () => {
    h = await harness({ controller: { baseDomain: 'localhost' } });
    await h.controller.createApp({ name: 'demo' });
    for (const hostname of [
      'future.localhost',
      '*.localhost',
      'a.b.localhost',
      'Future.LocalHost.',
    ]) {
      const err = await h.controller.addDomain('demo', hostname).catch((e: unknown) => e);
      expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_INVALID_INPUT'), hostname).toBe(true);
      expect((err as Error).message).toMatch(/under the base domain localhost/);
    }
    expect((await h.controller.listDomains('demo')).map((d) => d.hostname)).toEqual([
      'demo.localhost',
    ]);
    // The name stays free for its app; a domain of one's own is fine.
    await h.controller.createApp({ name: 'future' });
    await h.controller.addDomain('demo', 'www.localhost.example.com');
    expect((await h.routes.list({ service: 'demo-web' })).map((r) => r.domain).sort()).toEqual([
      'demo.localhost',
      'www.localhost.example.com',
    ]);
  });

  it('refuses a new app name too long for its services (<app>-<type>, one DNS label); 30 is fine', async () => {
    h = await harness({ controller: { baseDomain: 'localhost' } });
    for (const name of ['x'.repeat(31), `a${'b'.repeat(61)}c`]) {
      const err = await h.controller.createApp({ name }).catch((e: unknown) => e);
      expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_INVALID_INPUT'), name).toBe(true);
      expect((err as Error).message).toMatch(/at most 30 characters/);
    }
    expect(await h.controller.listApps()).toEqual([]);
    const name = 'x'.repeat(30);
    await h.controller.createApp({ name });
    expect((await h.routes.list({ service: `${name}-web` })).map((r) => r.domain)).toEqual([
      `${name}.localhost`,
    ]);
  });

  it('refuses a base domain that is no domain: a wildcard, empty, numeric, a slash, NUL, empty labels', async () => {
    const store = new MemoryStore();
    try {
      const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example.com`;
      for (const baseDomain of [
        '*',
        '*.example.com',
        '',
        '127',
        'a/b',
        'local\0host',
        'a..b',
        '.',
        long, // <app>.<it> would pass 253 characters
      ])
        try {
          new Controller({
            store,
            artifacts: new DirectoryArtifactStore({ dir: '/nonexistent/artifacts' }),
            workDir: '/nonexistent/work',
            baseDomain,
          });
          expect.unreachable(`${JSON.stringify(baseDomain)} was taken`);
        } catch (err) {
          expect(isFlotillaError(err, 'FLOTILLA_CONTROLLER_INVALID_INPUT'), String(err)).toBe(true);
          expect((err as { path?: string }).path).toBe('baseDomain');
        }
    } finally {
      await store.close();
    }
  });
});
