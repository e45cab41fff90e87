// Review of this session's controller changes: each test failed before its fix.
import { describe, expect, it } from 'vitest';
import { PacedQueue } from './internal/paced-queue.js';

async function drain<T>(q: PacedQueue<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of q) out.push(x);
  return out;
}

describe('a stopped one-off holds at most maxBufferedLines of its output', () => {
  it('also when the stop comes after its end had unpaced it (close() while its output is gathered)', async () => {
    // The run ended by itself: its output is no longer paced and piles up unread. A stop (the
    // controller's close) bounds it: what is held already is cut to the newest `max` too, not
    // only what comes after (one dropped per push kept all 10 held here).
    const q = new PacedQueue<string>(3);
    q.unpace();
    for (let i = 1; i <= 10; i++) expect(await q.push(String(i))).toBe(true);
    q.unpace({ max: 3, gap: (n) => `${n} not shown` });
    expect(await q.push('11')).toBe(true);
    q.end();
    expect(await drain(q)).toEqual(['8 not shown', '9', '10', '11']);
  });
});
