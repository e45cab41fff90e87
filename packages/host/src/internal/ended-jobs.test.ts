import { describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import type { LogLine } from '../log-buffer.js';
import { EndedJobs, replay } from './ended-jobs.js';

const job = (id: string) => ({
  id,
  app: 'demo',
  release: 'v1',
  type: 'web',
  state: 'crashed' as const,
  message: 'exited with code 1',
  finishedAt: 0,
  exitStatus: 1,
});
const lines = (id: string, texts: string[]): LogLine[] =>
  texts.map((line, seq) => ({ seq, time: seq, stream: 'stdout', jobId: id, line }));

async function collect(it: AsyncIterable<LogLine>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l.line);
  return out;
}

describe('EndedJobs', () => {
  it('forgets an ended job once retainMs has passed', async () => {
    const clock = new ManualClock(1000);
    const ended = new EndedJobs(
      { maxJobs: 10, maxLines: 10, maxBytes: 1000, retainMs: 500 },
      clock,
    );
    ended.add(job('a'), lines('a', ['x']));
    await clock.advance(300);
    ended.add(job('b'), lines('b', ['y']));
    await clock.advance(201);
    expect(ended.get('a')).toBeUndefined();
    expect(ended.get('b')?.job).toMatchObject({ id: 'b', lines: 1 });
    await clock.advance(300);
    expect(ended.get('b')).toBeUndefined();
  });

  it('keeps the newest lines within maxLines and maxBytes, and a replaced job once', async () => {
    const ended = new EndedJobs(
      { maxJobs: 2, maxLines: 3, maxBytes: 10, retainMs: 1e9 },
      new ManualClock(),
    );
    ended.add(job('a'), lines('a', ['1', '2', '3', '4']));
    expect(await collect(replay(ended.get('a')?.lines ?? [], {}))).toEqual(['2', '3', '4']);
    // 'four' + 'five!' is 9 bytes; 'three' would make 14.
    ended.add(job('b'), lines('b', ['three', 'four', 'five!']));
    expect(await collect(replay(ended.get('b')?.lines ?? [], {}))).toEqual(['four', 'five!']);
    // A line longer than maxBytes alone: nothing of it is kept, the status is.
    ended.add(job('c'), lines('c', ['x'.repeat(11)]));
    expect(ended.get('c')?.job.lines).toBe(0);
    expect(ended.get('a')).toBeUndefined();
    ended.add(job('b'), lines('b', ['again']));
    expect(await collect(replay(ended.get('b')?.lines ?? [], { tail: 5 }))).toEqual(['again']);
    expect(ended.get('c')).toBeDefined();
  });

  it('keeps nothing with maxJobs 0', () => {
    const ended = new EndedJobs(
      { maxJobs: 0, maxLines: 3, maxBytes: 10, retainMs: 1e9 },
      new ManualClock(),
    );
    ended.add(job('a'), lines('a', ['1']));
    expect(ended.get('a')).toBeUndefined();
  });

  it('replays a tail, nothing for tail 0, and stops when aborted', async () => {
    const kept = lines('a', ['1', '2', '3']);
    expect(await collect(replay(kept, { tail: 0 }))).toEqual([]);
    expect(await collect(replay(kept, { tail: 2 }))).toEqual(['2', '3']);
    expect(await collect(replay(kept, { signal: AbortSignal.abort() }))).toEqual([]);
    await expect(collect(replay(kept, { tail: 1.5 }))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
  });
});
