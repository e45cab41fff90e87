import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';
import { FlotillaError } from './errors.js';
import { retry } from './retry.js';

const flaky = (): FlotillaError =>
  new FlotillaError('FLOTILLA_TEST_DOWN', 'down', { retryable: true });

describe('retry', () => {
  it('retries retryable errors with doubling delays on the clock, then returns the result', async () => {
    const clock = new ManualClock();
    const delays: number[] = [];
    let calls = 0;
    const result = retry(() => (++calls < 4 ? Promise.reject(flaky()) : Promise.resolve('ok')), {
      clock,
      maxMs: 300,
      onRetry: (_e, ms) => delays.push(ms),
    });
    for (let i = 0; i < 3; i++) await clock.advance(300);
    expect(await result).toBe('ok');
    expect(delays).toEqual([100, 200, 300]);
  });

  it('throws at once what is not retryable', async () => {
    let calls = 0;
    const bad = new FlotillaError('FLOTILLA_TEST_BAD', 'bad input');
    await expect(retry(() => (calls++, Promise.reject(bad)))).rejects.toBe(bad);
    expect(calls).toBe(1);
  });

  it('rejects with the signal reason when aborted during a delay, and makes no further attempt', async () => {
    const clock = new ManualClock();
    const ac = new AbortController();
    let calls = 0;
    const result = retry(() => (calls++, Promise.reject(flaky())), {
      clock,
      signal: ac.signal,
      onRetry: () => ac.abort(new Error('closing')),
    });
    await expect(result).rejects.toThrow('closing');
    await clock.advance(10_000);
    expect(calls).toBe(1);
  });

  it('awaits an attempt in flight when aborted, then rejects with the reason if it failed', async () => {
    const ac = new AbortController();
    let calls = 0;
    let fail!: (err: unknown) => void;
    const result = retry(
      () => (calls++, new Promise<never>((_resolve, reject) => (fail = reject))),
      { signal: ac.signal },
    );
    ac.abort(new Error('closing'));
    fail(flaky());
    await expect(result).rejects.toThrow('closing');
    expect(calls).toBe(1);
  });

  it('gives up after budgetMs with the last error, its last delay cut to end at the budget', async () => {
    const clock = new ManualClock(0);
    const delays: number[] = [];
    let calls = 0;
    const result = retry(
      () => {
        calls++;
        return Promise.reject(flaky());
      },
      { clock, budgetMs: 1000, initialMs: 300, onRetry: (_err, ms) => delays.push(ms) },
    ).catch((err: unknown) => err);
    for (let i = 0; i < 10; i++) await clock.advance(200);
    expect(await result).toBeInstanceOf(FlotillaError);
    // 300, then 600 would pass the budget: cut to the 100 left; the attempt at 1000 ms is the last.
    expect(delays).toEqual([300, 600, 100]);
    expect(calls).toBe(4);
  });
});
