// Config values are secrets: no event and no log line of the controller carries one.
import type { Logger } from '@flotilla/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { ControllerEvent } from './events.js';
import { harness, sha, type Harness } from './test-support/harness.js';

const SECRET = 'sk_live_9f8e7d6c5b4a';
const WEB_APP = { Procfile: 'web: node server.js\n', 'server.js': '// serve\n' };

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A logger keeping every line it is given, at every level, children included. */
function capturingLogger(lines: string[], bindings: Record<string, unknown> = {}): Logger {
  const log =
    (level: string) =>
    (a: unknown, b?: unknown): void => {
      lines.push(
        JSON.stringify({ level, bindings, a, b }, (_k, v: unknown) =>
          v instanceof Error ? { message: v.message, stack: v.stack, cause: v.cause } : v,
        ),
      );
    };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (more) => capturingLogger(lines, { ...bindings, ...more }),
  };
}

describe('config values are never in events or logs', () => {
  it('release.created names the config keys only; no event nor log line holds a value', async () => {
    const logs: string[] = [];
    h = await harness({
      controller: { logger: capturingLogger(logs) },
      agents: {
        behaviour: (job) =>
          job.release?.config.BROKEN === '1' ? { crash: 3, message: 'exited with code 3' } : 'run',
      },
    });
    const events: ControllerEvent[] = [];
    const ac = new AbortController();
    const collecting = (async () => {
      for await (const ev of h.controller.events({ signal: ac.signal })) events.push(ev);
    })();
    try {
      await h.controller.createApp({ name: 'demo' });
      // Every path that makes a release: config before a build, a build, a config change, a
      // failed deploy (rolled back), a rollback.
      await h.controller.patchConfig('demo', { API_KEY: SECRET });
      const build = await h.controller.createBuild('demo', {
        type: 'git',
        dir: await h.source(WEB_APP),
        sha: sha(1),
      });
      expect((await h.controller.waitForDeploy('demo', build.id)).status).toBe('live');
      await h.controller.patchConfig('demo', { OTHER: `${SECRET}-2` });
      await h.controller
        .patchConfig('demo', { BROKEN: '1', TOKEN: `${SECRET}-3` })
        .catch((e: unknown) => e);
      await h.controller.rollback('demo', 'v3');
    } finally {
      ac.abort();
      await collecting;
    }
    const created = events.filter((e) => e.type === 'release.created');
    expect(created.map((e) => e.release.id)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    expect(created.map((e) => e.release.configKeys)).toEqual([
      ['API_KEY'],
      ['API_KEY'],
      ['API_KEY', 'OTHER'],
      ['API_KEY', 'BROKEN', 'OTHER', 'TOKEN'],
      ['API_KEY', 'OTHER'],
    ]);
    expect(created.every((e) => !('config' in e.release))).toBe(true);
    // The values are kept where a user reads them on purpose.
    expect((await h.controller.getRelease('demo', 'v5')).config.API_KEY).toBe(SECRET);
    expect(logs.length).toBeGreaterThan(0); // the failed deploy was logged
    for (const ev of events) expect(JSON.stringify(ev), ev.type).not.toContain(SECRET);
    for (const line of logs) expect(line).not.toContain(SECRET);
  });
});
