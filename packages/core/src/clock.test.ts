import { describe, expect, it } from 'vitest';
import { ManualClock, sleep, systemClock } from './clock.js';

describe('ManualClock', () => {
  it('fires due timers in time order and nothing early', async () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 200);
    clock.setTimeout(() => fired.push('a'), 100);
    clock.setTimeout(() => fired.push('c'), 300);
    await clock.advance(199);
    expect(fired).toEqual(['a']);
    expect(clock.now()).toBe(1199);
    await clock.advance(200);
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.pending).toBe(0);
  });

  it('fires timers set by timers within the same advance, and lets promises settle', async () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    const tick = (): void => {
      seen.push(clock.now());
      if (seen.length < 3) clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    let settled = false;
    clock.setTimeout(() => void Promise.resolve().then(() => (settled = true)), 5);
    await clock.advance(100);
    expect(seen).toEqual([10, 20, 30]);
    expect(settled).toBe(true);
  });

  it('cancels timers', async () => {
    const clock = new ManualClock();
    let fired = false;
    const t = clock.setTimeout(() => (fired = true), 10);
    clock.clearTimeout(t);
    await clock.advance(20);
    expect(fired).toBe(false);
  });
});

describe('systemClock', () => {
  it('tells real time and runs real timers', async () => {
    const before = Date.now();
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 1));
  });
});

describe('sleep', () => {
  it('waits on the clock and ends early when its signal aborts', async () => {
    const clock = new ManualClock();
    let done = false;
    const slept = sleep(clock, 100).then(() => (done = true));
    await clock.advance(99);
    expect(done).toBe(false);
    await clock.advance(1);
    await slept;
    expect(done).toBe(true);
    const controller = new AbortController();
    const aborted = sleep(clock, 1000, controller.signal);
    controller.abort();
    await aborted;
    expect(clock.pending).toBe(0);
  });
});
