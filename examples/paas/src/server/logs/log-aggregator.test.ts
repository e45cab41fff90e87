// Following an app's logs ends when the app is destroyed (the stream was left open for good).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@flotilla/core';
import type { ControllerEvent } from '@flotilla/controller';
import { LogAggregator } from './log-aggregator.js';

describe('LogAggregator', () => {
  it('ends a follow when the app is destroyed', async () => {
    const logs = new LogAggregator({
      localHostId: 'here',
      driver: undefined,
      dynos: () => Promise.resolve([]),
      // The app's events: it is destroyed, then nothing more (the iteration stays open).
      events: async function* (app, signal) {
        yield { type: 'app.destroyed', app, time: 1 } as ControllerEvent;
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      },
      hostAddress: () => Promise.resolve(undefined),
      token: 't',
      logger: silentLogger,
    });
    const lines: string[] = [];
    const giveUp = AbortSignal.timeout(5000);
    for await (const line of logs.read('demo', { lines: 10, follow: true, signal: giveUp }))
      lines.push(line);
    // It ended by itself, not because the reader gave up.
    expect(giveUp.aborted).toBe(false);
    expect(lines).toEqual([]);
  });
});
