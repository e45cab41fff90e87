// Hostile review of BodyFramer.decode (e51231f, 49d87aa): a chunked body de-chunked in place
// for an HTTP/1.0 client, attacked as a backend would: lying and huge chunk sizes, extensions,
// trailers, bytes after the body, every split of the stream. What is checked: the data that
// comes out is exactly the chunks' data, `decode` accepts and refuses exactly what `feed` does
// (the path of HTTP/1.1 clients), and it never writes outside the buffer it is given nor past
// the body's end in it.
import { describe, expect, it } from 'vitest';
import { BodyFramer, FramingError } from './body-framer.js';

/** A seeded PRNG (mulberry32): failures replay. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Run {
  /** The data `decode` put at the front of each piece, concatenated. */
  data: Buffer;
  /** Whether the body ended. */
  done: boolean;
  /** The error, if the framing was refused, and in which piece. */
  error?: string;
  at?: number;
}

const GUARD = 0xa5;

/**
 * Decodes `pieces` in order, each in a buffer with guard bytes on both sides (a view of a
 * larger one, as a read buffer is): the guards must stay, and so must the bytes of a piece
 * after the body's end (`feed` says where that is).
 */
function decodeAll(pieces: readonly Buffer[]): Run {
  const framer = new BodyFramer('chunked');
  const checker = new BodyFramer('chunked');
  const out: Buffer[] = [];
  for (let k = 0; k < pieces.length; k++) {
    const piece = pieces[k] as Buffer;
    const backing = Buffer.alloc(piece.length + 32, GUARD);
    piece.copy(backing, 16);
    const view = backing.subarray(16, 16 + piece.length);
    let end: number;
    try {
      end = checker.feed(Buffer.from(piece));
    } catch (err) {
      expect(() => framer.decode(view)).toThrow(FramingError);
      return {
        data: Buffer.concat(out),
        done: false,
        error: (err as Error).message,
        at: k,
      };
    }
    const n = framer.decode(view);
    expect(n).toBeLessThanOrEqual(end);
    expect(framer.done).toBe(checker.done);
    expect(framer.bytes).toBe(checker.bytes);
    // Nothing written outside the view, nor after the body's end in it.
    expect(backing.subarray(0, 16).every((b) => b === GUARD)).toBe(true);
    expect(backing.subarray(16 + piece.length).every((b) => b === GUARD)).toBe(true);
    expect(view.subarray(end).equals(piece.subarray(end))).toBe(true);
    out.push(Buffer.from(view.subarray(0, n)));
    if (framer.done) break;
  }
  return { data: Buffer.concat(out), done: framer.done };
}

/** `bytes` split at the given offsets. */
function split(bytes: Buffer, at: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const a of [...at].sort((x, y) => x - y)) {
    out.push(bytes.subarray(from, a));
    from = a;
  }
  out.push(bytes.subarray(from));
  return out;
}

/** A chunked encoding of `chunks`, with extensions and trailers, in random spellings. */
function encode(chunks: readonly Buffer[], rand: () => number): Buffer {
  const parts: Buffer[] = [];
  const ext = (): string =>
    [';', ' ;a=1', ';name="v\tx"', '\t; q', ';' + 'e'.repeat(100)][
      Math.floor(rand() * 5)
    ] as string;
  for (const c of chunks) {
    let size = c.length.toString(16);
    if (rand() < 0.3) size = size.toUpperCase();
    if (rand() < 0.2) size = `000${size}`;
    parts.push(Buffer.from(`${size}${rand() < 0.3 ? ext() : ''}\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${rand() < 0.5 ? ext() : ''}\r\n`));
  if (rand() < 0.5) parts.push(Buffer.from('X-Trailer: a\r\nChecksum: \u00ffz\r\n', 'latin1'));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

describe('BodyFramer.decode, as a hostile backend', () => {
  it('gives the data exactly, split at every byte boundary and at two', () => {
    const rand = rng(3);
    const chunks = [
      Buffer.from('a'),
      Buffer.from('\r\n0\r\n\r\n'),
      Buffer.alloc(17, 0x30),
      Buffer.from('z'),
    ];
    const want = Buffer.concat(chunks);
    const wire = Buffer.concat([encode(chunks, rand), Buffer.from('HTTP/1.1 200 OK\r\n\r\nleak')]);
    for (let a = 0; a <= wire.length; a++) {
      for (let b = a; b <= wire.length; b += a % 3 === 0 ? 1 : 7) {
        const run = decodeAll(split(wire, [a, b]));
        expect(run.error).toBeUndefined();
        expect(run.done).toBe(true);
        expect(run.data.equals(want)).toBe(true);
      }
    }
  });

  it('gives the data exactly for 300 random bodies, split at random, 1-byte chunks too', () => {
    const rand = rng(11);
    for (let n = 0; n < 300; n++) {
      const chunks: Buffer[] = [];
      const count = Math.floor(rand() * 40);
      for (let k = 0; k < count; k++) {
        const len = rand() < 0.5 ? 1 : 1 + Math.floor(rand() * 3000);
        const c = Buffer.alloc(len);
        for (let j = 0; j < len; j++) c[j] = Math.floor(rand() * 256);
        chunks.push(c);
      }
      const wire = encode(chunks, rand);
      const cuts = Array.from({ length: Math.floor(rand() * 20) }, () =>
        Math.floor(rand() * (wire.length + 1)),
      );
      const run = decodeAll(split(wire, cuts));
      expect(run.error).toBeUndefined();
      expect(run.done).toBe(true);
      expect(run.data.equals(Buffer.concat(chunks))).toBe(true);
    }
  });

  it('refuses what feed refuses, in the same piece, and lets out no byte that is not data', () => {
    // Each with the data its chunks claim before the framing breaks.
    const bad: [string, string][] = [
      ['5\r\nabc\r\n0\r\n\r\n', 'abc\r\n'], // a size larger than the data: it eats the CRLF
      ['2\r\nabcdef\r\n0\r\n\r\n', 'ab'], // smaller
      ['-1\r\n', ''],
      ['\r\n', ''],
      ['g\r\n', ''],
      ['5 5\r\nhello\r\n', ''],
      ['0x5\r\nhello\r\n', ''],
      ['+5\r\nhello\r\n', ''],
      ['5\nhello\r\n', ''],
      ['5\r\nhello\n0\r\n\r\n', 'hello'],
      ['5\r\nhello\r\r\n', 'hello'],
      ['5;\u0000\r\nhello\r\n', ''],
      ['5;a\nb\r\nhello\r\n', ''],
      ['10000000000000000\r\n', ''],
      ['ffffffffffffffff\r\n', ''],
      [`5;${'e'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`, ''],
      [`0\r\n${'X: y\r\n'.repeat(5000)}\r\n`, ''],
      ['0\r\nX: \u0000\r\n\r\n', ''],
      ['0\r\n\r\r\n', ''],
      ['0\r\nX: y\n\r\n', ''],
      ['5\r\nhello\r\n0\r\nX\r\n\n', 'hello'],
    ];
    for (const [body, claimed] of bad) {
      const wire = Buffer.from(body, 'latin1');
      for (let a = 0; a <= wire.length; a += Math.max(1, Math.floor(wire.length / 50))) {
        const run = decodeAll(split(wire, [a]));
        expect(run.error, body).toBeDefined();
        expect(run.done).toBe(false);
        // What came out before the refusal is (a prefix of) what the chunks claimed.
        expect(claimed.startsWith(run.data.toString('latin1')), body).toBe(true);
      }
    }
  });

  it('takes the largest sizes it accepts without reading past the buffer (data as it comes)', () => {
    const framer = new BodyFramer('chunked');
    const head = Buffer.from('1fffffffffffff;x\r\n');
    expect(framer.decode(head)).toBe(0);
    const backing = Buffer.alloc(64 * 1024 + 32, GUARD);
    const view = backing.subarray(16, 16 + 64 * 1024);
    view.fill(7);
    expect(framer.decode(view)).toBe(64 * 1024);
    expect(framer.bytes).toBe(64 * 1024);
    expect(framer.done).toBe(false);
    expect(backing.subarray(0, 16).every((b) => b === GUARD)).toBe(true);
    expect(backing.subarray(16 + 64 * 1024).every((b) => b === GUARD)).toBe(true);
    expect(() => new BodyFramer('chunked').decode(Buffer.from('20000000000000\r\n'))).toThrow(
      'chunk size too large',
    );
  });

  it('keeps each body to itself: two framers over interleaved reads', () => {
    const rand = rng(5);
    const a = [Buffer.alloc(1000, 'a'), Buffer.alloc(3, 'a')];
    const b = [Buffer.alloc(1, 'b'), Buffer.alloc(4000, 'b')];
    const fa = new BodyFramer('chunked');
    const fb = new BodyFramer('chunked');
    const wa = encode(a, rand);
    const wb = encode(b, rand);
    const got = { a: [] as Buffer[], b: [] as Buffer[] };
    // One shared read buffer, as a pool's would be if it were reused: each decode works on a
    // copy of its own connection's bytes, and what it returns is taken before the next read.
    const shared = Buffer.alloc(512);
    for (let off = 0; off < Math.max(wa.length, wb.length); off += 512) {
      for (const [w, f, out] of [
        [wa, fa, got.a],
        [wb, fb, got.b],
      ] as const) {
        if (off >= w.length) continue;
        const n = w.copy(shared, 0, off, off + 512);
        const d = f.decode(shared.subarray(0, n));
        out.push(Buffer.from(shared.subarray(0, d)));
      }
    }
    expect(fa.done && fb.done).toBe(true);
    expect(Buffer.concat(got.a).equals(Buffer.concat(a))).toBe(true);
    expect(Buffer.concat(got.b).equals(Buffer.concat(b))).toBe(true);
  });
});
