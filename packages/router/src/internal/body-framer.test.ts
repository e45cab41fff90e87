// BodyFramer's bounds on what a chunked body may carry besides its data, and the trailer
// section it holds back from the bytes forwarded as they are.
import { describe, expect, it } from 'vitest';
import { BodyFramer, FramingError } from './body-framer.js';

function feed(body: string): string | undefined {
  try {
    new BodyFramer('chunked').feed(Buffer.from(body, 'latin1'));
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

describe('BodyFramer trailers', () => {
  it('counts every byte of a trailer section against its 16 KiB, line ends included', () => {
    // 6,000 one-character trailer lines: 6,000 bytes of fields, 18,000 bytes on the wire.
    const short = 'a\r\n'.repeat(6000);
    expect(feed(`0\r\n${short}\r\n`)).toBe('trailers too large');
    // Well under the bound on the wire: accepted.
    expect(feed(`0\r\n${'x-t: v\r\n'.repeat(1000)}\r\n`)).toBeUndefined();
  });
});

/**
 * Feeds `wire` cut at `cuts` as a caller does: what feed() returns is forwarded as it is, the
 * rest of a buffer is held back (trailers) or, once the body is done, belongs to what follows.
 */
function run(
  wire: string,
  cuts: number[],
): { forwarded: string; after: string; framer: BodyFramer } {
  const framer = new BodyFramer('chunked');
  let forwarded = '';
  let after = '';
  let at = 0;
  for (const cut of [...cuts, wire.length]) {
    // A buffer the caller reuses after each call, as the upstream read buffer is.
    const buf = Buffer.from(wire.slice(at, cut), 'latin1');
    at = cut;
    if (framer.done) {
      after += buf.toString('latin1');
      continue;
    }
    const end = framer.feed(buf);
    forwarded += buf.toString('latin1', 0, end);
    const rest = framer.trailing ? framer.end : end;
    if (framer.done) after += buf.toString('latin1', rest);
    else expect(rest).toBe(buf.length);
    buf.fill(0x21);
  }
  return { forwarded, after, framer };
}

describe('BodyFramer trailer section', () => {
  const body = '5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n';
  const section = 'X-Forwarded-For: 6.6.6.6\r\nhost:evil\r\nX-A:  1 \r\nx-b: \t2\r\n\r\n';

  it('holds the section back at every split in two and three, and parses it', () => {
    const wire = `${body}${section}NEXT`;
    for (let i = 0; i <= wire.length; i++) {
      for (let j = i; j <= wire.length; j += 3) {
        const { forwarded, after, framer } = run(wire, [i, j]);
        expect(forwarded, `${i} ${j}`).toBe(body);
        expect(after, `${i} ${j}`).toBe('NEXT');
        expect(framer.done).toBe(true);
        const t = framer.trailers;
        expect(t?.names).toEqual(['x-forwarded-for', 'host', 'x-a', 'x-b']);
        expect(t?.text).toBe(section);
        expect(t?.lineStarts).toEqual([0, 26, 37, 47, 56]);
      }
    }
  });

  it('a body without trailers is forwarded whole, at every split, and holds nothing', () => {
    const wire = `${body}\r\nNEXT`;
    for (let i = 0; i <= wire.length; i++) {
      const { forwarded, after, framer } = run(wire, [i]);
      expect(forwarded).toBe(`${body}\r\n`);
      expect(after).toBe('NEXT');
      expect(framer.trailing).toBe(false);
      expect(framer.trailers).toBeNull();
    }
  });

  it('decode() (an HTTP/1.0 client) drops the section without holding it', () => {
    const framer = new BodyFramer('chunked');
    const buf = Buffer.from(`${body}${section}`, 'latin1');
    expect(buf.toString('latin1', 0, framer.decode(buf))).toBe('helloabc');
    expect(framer.done).toBe(true);
    expect(framer.trailing).toBe(false);
    expect(framer.trailers).toBeNull();
  });

  it('holds a section trickled a byte per read in one buffer, not an object per read', () => {
    // 100 sections of 15.5 KB, each fed one byte at a time and not yet ended: held as a Buffer
    // per read, that was 1.5 million objects (about 100 MB of heap) for 1.5 MB of bytes.
    const section = `x-t: ${'v'.repeat(90)}\r\n`.repeat(160);
    const framers: BodyFramer[] = [];
    const before = process.memoryUsage().heapUsed;
    for (let k = 0; k < 100; k++) {
      const framer = new BodyFramer('chunked');
      framer.feed(Buffer.from('0\r\n'));
      const one = Buffer.alloc(1);
      let forwarded = 0;
      for (let j = 0; j < section.length; j++) {
        one[0] = section.charCodeAt(j);
        forwarded += framer.feed(one);
      }
      expect(forwarded).toBe(0);
      framers.push(framer);
    }
    const grown = process.memoryUsage().heapUsed - before;
    expect(framers.every((f) => f.trailing && !f.done)).toBe(true);
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    // And each still ends as a whole.
    const last = framers[0] as BodyFramer;
    last.feed(Buffer.from('\r\n'));
    expect(last.trailers?.names.length).toBe(160);
  });

  it.each([
    ['whitespace before the colon', 'X-T : a\r\n'],
    ['obsolete line folding', 'X-T: a\r\n  folded\r\n'],
    ['a line that starts with whitespace', ' X-T: a\r\n'],
    ['no colon', 'X-T\r\n'],
    ['an empty name', ': a\r\n'],
    ['a name that is no token', 'X[T]: a\r\n'],
    ['a NUL byte in a name', 'X-\0T: a\r\n'],
  ])('refuses a trailer field with %s', (_what, line) => {
    const framer = new BodyFramer('chunked');
    expect(() => framer.feed(Buffer.from(`${body}${line}\r\n`, 'latin1'))).toThrow(FramingError);
  });
});
