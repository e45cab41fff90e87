// Following an app's logs ends when the app is destroyed (the stream was left open for good);
// dynos that ended are still read once replaced, the last ENDED_PER_APP of each app.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@flotilla/core';
import type { ControllerEvent } from '@flotilla/controller';
import type { LogLine } from '@flotilla/host';
import { ENDED_PER_APP, LogAggregator } from './log-aggregator.js';

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

  it('reads the last lines of dynos that ended, the newest ENDED_PER_APP of an app', async () => {
    // Each job's one line is its id; job-0 ... job-24 ended, web.1 runs as job-now.
    const logs = new LogAggregator({
      localHostId: 'here',
      driver: {
        logs: async function* (jobId: string): AsyncGenerator<LogLine> {
          yield {
            seq: 1,
            time: Number(jobId.replace(/\D/g, '') || 99),
            stream: 'stdout',
            jobId,
            line: jobId,
          };
        },
      },
      dynos: () =>
        Promise.resolve([
          {
            id: 'job-now',
            name: 'web.1',
            type: 'web',
            index: 1,
            release: 'v2',
            deployment: 'v2',
            host: 'here',
            state: 'up',
            createdAt: 1,
          },
        ]),
      events: () => {
        throw new Error('not following: no events are read');
      },
      hostAddress: () => Promise.resolve(undefined),
      token: 't',
      logger: silentLogger,
    });
    const ended = (i: number): ControllerEvent =>
      ({
        type: 'job.state',
        app: 'demo',
        jobId: `job-${i}`,
        processType: 'web',
        index: 1,
        release: 'v1',
        host: 'here',
        state: 'crashed',
        previous: 'up',
        time: i,
      }) as ControllerEvent;
    for (let i = 0; i < 25; i++) logs.observe(ended(i));
    // Another app's and a running job's events change nothing.
    logs.observe({ ...ended(7), app: 'other' } as ControllerEvent);
    logs.observe({ ...ended(30), state: 'up' } as ControllerEvent);
    const read = async (): Promise<string[]> => {
      const out: string[] = [];
      for await (const l of logs.read('demo', {
        lines: 100,
        follow: false,
        signal: AbortSignal.timeout(5000),
      }))
        out.push(l.replace(/^.*\]: /, ''));
      return out;
    };
    const expected = Array.from(
      { length: ENDED_PER_APP },
      (_, i) => `job-${25 - ENDED_PER_APP + i}`,
    );
    expect(await read()).toEqual([...expected, 'job-now']);
    logs.observe({ type: 'app.destroyed', app: 'demo', time: 1 } as ControllerEvent);
    expect(await read()).toEqual(['job-now']);
  });
});
