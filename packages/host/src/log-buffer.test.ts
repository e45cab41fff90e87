import { describe, expect, it } from 'vitest';
import { ManualClock } from '@flotilla/core';
import { LogBuffer, type LogLine } from './log-buffer.js';

async function collect(it: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of it) out.push(l);
  return out;
}

describe('LogBuffer', () => {
  it('completes lines at newlines, per stream, holding partial lines until newline or flush', () => {
    const clock = new ManualClock(1000);
    const b = new LogBuffer('web.1', { clock });
    b.write('stdout', 'hel');
    b.write('stderr', 'oops\r\n');
    b.write('stdout', 'lo\nwor');
    expect(b.lines().map((l) => [l.stream, l.line])).toEqual([
      ['stderr', 'oops'],
      ['stdout', 'hello'],
    ]);
    b.flush('stdout');
    expect(b.lines().at(-1)).toEqual({
      seq: 2,
      time: 1000,
      stream: 'stdout',
      jobId: 'web.1',
      line: 'wor',
    });
    b.write('stdout', '\n\n');
    expect(b.lines().map((l) => l.line)).toEqual(['oops', 'hello', 'wor', '', '']);
  });

  it('splits long lines on character boundaries and marks all pieces but the last', () => {
    const b = new LogBuffer('j', { maxLineBytes: 10, maxBytes: 4096 });
    b.write('stdout', 'aaaaaaaaa€bbb'); // € is 3 bytes: it would straddle the cut at 10
    b.write('stdout', 'c'.repeat(25) + '\n');
    const lines = b.lines();
    expect(lines.map((l) => l.line)).toEqual([
      'aaaaaaaaa',
      '€bbbcccc',
      'cccccccccc',
      'cccccccccc',
      'c',
    ]);
    expect(lines.map((l) => l.partial ?? false)).toEqual([true, true, true, true, false]);
    expect(lines.every((l) => Buffer.byteLength(l.line) <= 10)).toBe(true);
  });

  it('a huge line without newline never holds more than maxLineBytes pending', () => {
    const b = new LogBuffer('j', { maxLineBytes: 1024, maxBytes: 8192, maxLines: 100 });
    for (let i = 0; i < 1000; i++) b.write('stdout', 'x'.repeat(1000));
    expect(b.bytes).toBeLessThanOrEqual(8192);
    expect(b.lines().every((l) => l.partial === true && l.line.length === 1024)).toBe(true);
  });

  it('replaces invalid UTF-8 and keeps NUL and binary output from breaking lines', () => {
    const b = new LogBuffer('j');
    b.write('stdout', Buffer.from([0xff, 0xfe, 0x41, 0x00, 0x0a, 0xc3]));
    b.write('stdout', Buffer.from([0xa9, 0x0a])); // é split across writes
    expect(b.lines().map((l) => l.line)).toEqual(['\ufffd\ufffdA\0', 'é']);
  });

  it('is bounded by lines and by bytes, dropping the oldest', () => {
    const byLines = new LogBuffer('j', { maxLines: 3 });
    for (let i = 0; i < 10; i++) byLines.write('stdout', `l${i}\n`);
    expect(byLines.lines().map((l) => l.line)).toEqual(['l7', 'l8', 'l9']);
    expect(byLines.lines().map((l) => l.seq)).toEqual([7, 8, 9]);

    const byBytes = new LogBuffer('j', { maxBytes: 2048, maxLineBytes: 1000 });
    for (let i = 0; i < 100; i++) byBytes.write('stderr', `${'y'.repeat(900)}\n`);
    expect(byBytes.bytes).toBeLessThanOrEqual(2048);
    expect(byBytes.size).toBe(2);
  });

  it('reads a tail, and follows until the log ends', async () => {
    const b = new LogBuffer('j');
    for (let i = 0; i < 5; i++) b.write('stdout', `${i}\n`);
    expect((await collect(b.read({ tail: 2 }))).map((l) => l.line)).toEqual(['3', '4']);
    expect(await collect(b.read({ tail: 0 }))).toEqual([]);
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of b.read({ tail: 1, follow: true })) seen.push(l.line);
    })();
    b.write('stdout', '5\n');
    b.append('system', 'bye');
    b.end();
    await following;
    expect(seen).toEqual(['4', '5', 'bye']);
    expect(() => b.write('stdout', 'late\n')).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_HOST_CLOSED' }),
    );
  });

  it('ends a follow when its signal aborts, and stays open for others', async () => {
    const b = new LogBuffer('j');
    const ac = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of b.read({ follow: true, signal: ac.signal })) seen.push(l.line);
    })();
    b.write('stdout', 'a\n');
    await new Promise((r) => setImmediate(r));
    ac.abort();
    await following;
    expect(seen).toEqual(['a']);
    expect(b.ended).toBe(false);
  });

  it('tells a slow follower how many lines it missed instead of holding them', async () => {
    const b = new LogBuffer('j', { maxLines: 4 });
    const it = b.read({ follow: true })[Symbol.asyncIterator]();
    b.write('stdout', 'first\n');
    expect((await it.next()).value).toMatchObject({ line: 'first' });
    for (let i = 0; i < 100; i++) b.write('stdout', `n${i}\n`);
    const next = await it.next();
    expect(next.value).toMatchObject({ line: 'n96', missed: 96 });
    expect((await it.next()).value).not.toHaveProperty('missed');
    await it.return?.();
  });

  it('refuses options that cannot hold a line', () => {
    expect(() => new LogBuffer('j', { maxLines: 0 })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
    );
    expect(() => new LogBuffer('j', { maxBytes: 4096, maxLineBytes: 8192 })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
    );
    expect(() => new LogBuffer('j', { maxLines: Number.NaN })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS' }),
    );
  });

  it('reads all it keeps with fromStart, and refuses fromStart with tail', async () => {
    const b = new LogBuffer('j', { maxLines: 3 });
    for (let i = 0; i < 5; i++) b.write('stdout', `n${i}\n`);
    b.end();
    const got = [];
    for await (const l of b.read({ fromStart: true })) got.push(l.line);
    expect(got).toEqual(['n2', 'n3', 'n4']);
    await expect(b.read({ fromStart: true, tail: 1 }).next()).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_OPTIONS',
    });
  });
});
