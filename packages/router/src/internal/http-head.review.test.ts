// Hostile review of the byte-scanning head parser (caaa29f, 8756636): a differential test
// against the parser it replaced (6334a8e, inlined at the bottom as a fixture), on crafted
// heads, every byte value at every position of small heads, names that collide with the
// interned ones, and random heads; plus the Connection token arrays shared between heads.
// The only intended difference: `headers` now holds lower-cased names (only values are read).
import { describe, expect, it } from 'vitest';
import {
  findHeadEnd,
  HeadError,
  latin1,
  parseRequestHead,
  parseResponseHead,
} from './http-head.js';

const limits = { maxHeaderBytes: 4096, maxHeaderCount: 20 };
/** As http1-connection.ts: a response head is decoded with up to this many body bytes. */
const INLINE_BODY = 1024;

type Outcome = string;

function outcome(parse: () => object): Outcome {
  try {
    const h = parse() as Record<string, unknown>;
    const out: Record<string, unknown> = { ...h };
    const headers = h.headers as string[];
    out.headers = headers.map((s, i) => (i % 2 === 0 ? s.toLowerCase() : s));
    return JSON.stringify(out);
  } catch (err) {
    if (err instanceof HeadError || err instanceof OldHeadError)
      return `refused ${err.status} ${err.message}`;
    throw err;
  }
}

/** The new parser as the router calls it; `after`: bytes that follow the head in the read. */
function parseNew(head: Buffer, response: boolean, after: Buffer): Outcome {
  const buf = Buffer.concat([head, after]);
  return outcome(() => {
    const end = findHeadEnd(buf, limits, response);
    if (end === -1) return { incomplete: true, headers: [] };
    if (response) {
      const text = latin1(buf, 0, Math.min(buf.length, end + INLINE_BODY));
      return parseResponseHead(buf, text, end, limits);
    }
    return parseRequestHead(buf, latin1(buf, 0, end), end, limits);
  });
}

/** The old parser as the router called it (a latin1 string of the head). */
function parseOld(head: Buffer, response: boolean, after: Buffer): Outcome {
  const buf = Buffer.concat([head, after]);
  return outcome(() => {
    const end = oldFindHeadEnd(buf, limits, response);
    if (end === -1) return { incomplete: true, headers: [] };
    if (response)
      return oldParseResponseHead(
        oldLatin1(buf, 0, Math.min(buf.length, end + INLINE_BODY)),
        end,
        limits,
      );
    return oldParseRequestHead(oldLatin1(buf, 0, end), end, limits);
  });
}

/** What follows a head in the byte-by-byte cases: nothing, or more CRLFs and a request. */
const BYTE_AFTER = [Buffer.alloc(0), Buffer.from('\r\n\r\nGET / HTTP/1.1\r\n')];
const AFTER = [
  Buffer.alloc(0),
  Buffer.from('\r\n\r\nGET / HTTP/1.1\r\n'),
  Buffer.from('zz: 1\r\n'),
];

/** Asserts both parsers agree on `head` (as a request and as a response), whatever follows. */
function agree(head: Buffer | string, label = '', after = AFTER): number {
  const b = typeof head === 'string' ? Buffer.from(head, 'latin1') : head;
  let parsed = 0;
  for (const response of [false, true]) {
    for (const a of after) {
      const n = parseNew(b, response, a);
      const o = parseOld(b, response, a);
      if (n !== o)
        expect({ label, head: b.toString('latin1'), response, got: n }).toEqual({
          label,
          head: b.toString('latin1'),
          response,
          got: o,
        });
      if (!n.startsWith('refused') && !n.includes('"incomplete"')) parsed++;
    }
  }
  return parsed;
}

// The interned names, as the parser lists them (kept in step by the first test below).
const KNOWN = [
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'date',
  'server',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'accept-ranges',
  'cache-control',
  'cookie',
  'set-cookie',
  'etag',
  'expires',
  'last-modified',
  'location',
  'vary',
  'content-encoding',
  'referer',
  'origin',
  'authorization',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-host',
  'x-request-id',
  'x-request-start',
  'x-real-ip',
  'forwarded',
  'te',
  'trailer',
  'proxy-connection',
  'pragma',
  'if-none-match',
  'if-modified-since',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'access-control-allow-origin',
  'strict-transport-security',
  'x-powered-by',
];
function nameHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
const slot = (hash: number): number => (hash ^ (hash >>> 12)) & 4095;

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
const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz";

/**
 * Names of `known`'s length, not `known`, that fall in its slot of the interned table: random
 * ones, and ones that differ from it in one to three bytes only.
 */
function collisions(known: string, want: number, rand: () => number): string[] {
  const target = slot(nameHash(known));
  const out: string[] = [];
  const pick = (): string => TCHARS[Math.floor(rand() * TCHARS.length)] as string;
  for (let tries = 0; out.length < want && tries < 5_000_000; tries++) {
    const s = Array.from(known, () => pick()).join('');
    if (s !== known && slot(nameHash(s)) === target) out.push(s);
  }
  for (let found = 0, tries = 0; found < want && tries < 5_000_000; tries++) {
    const chars = [...known];
    const changes = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < changes; k++) chars[Math.floor(rand() * chars.length)] = pick();
    const s = chars.join('');
    if (s !== known && slot(nameHash(s)) === target) {
      out.push(s);
      found++;
    }
  }
  return out;
}

function randomCase(s: string, rand: () => number): string {
  let out = '';
  for (const ch of s) out += rand() < 0.5 ? ch.toUpperCase() : ch;
  return out;
}

const REQ = 'GET / HTTP/1.1\r\nHost: a\r\n';
const RES = 'HTTP/1.1 200 OK\r\n';

describe('head parser, byte scanning vs the latin1 string parser it replaced', () => {
  it('reads every interned name in any case, and one that differs in a byte as itself', () => {
    const rand = rng(1);
    for (const n of KNOWN) {
      const other = `${n.slice(0, -1)}_`;
      const v = n === 'transfer-encoding' ? 'chunked' : '1';
      const text = `POST / HTTP/1.1\r\n${randomCase(n, rand)}: ${v}\r\n${other}: 2\r\n${n === 'host' ? '' : 'Host: h\r\n'}\r\n`;
      const b = Buffer.from(text, 'latin1');
      const h = parseRequestHead(b, text, b.length, limits);
      expect(h.names.slice(0, 2)).toEqual([n, other]);
    }
  });

  it('agrees on crafted request and response heads', () => {
    const cases: string[] = [];
    const lengths = [
      '0',
      '00',
      '0012',
      '+12',
      '-1',
      '1 2',
      ' 12 ',
      '12\t',
      '1_000',
      '0x10',
      '१२',
      '12a',
      '999999999999999',
      '0999999999999999',
      '1000000000000000',
      '9007199254740993',
      '000000000000001',
      '0000000000000001',
      '',
      ',',
      '12, 12',
      '12,12',
    ];
    for (const v of lengths) {
      cases.push(`${REQ}Content-Length: ${v}\r\n\r\n`);
      cases.push(`${RES}content-length:${v}\r\n\r\n`);
      cases.push(`${REQ}Content-Length: ${v}\r\nCONTENT-LENGTH: 12\r\n\r\n`);
      cases.push(`${RES}Content-Length: 12\r\ncontent-length: ${v}\r\n\r\n`);
    }
    const te = [
      'chunked',
      'Chunked',
      'CHUNKED',
      ' chunked ',
      'chunked,',
      'chunked, chunked',
      'gzip, chunked',
      'chunkedx',
      'chunke',
      'chunk\u00e9d',
      'identity',
      '',
      'chunked\t',
    ];
    for (const v of te) {
      cases.push(`${REQ}Transfer-Encoding: ${v}\r\n\r\n`);
      cases.push(`POST / HTTP/1.0\r\nTransfer-Encoding: ${v}\r\n\r\n`);
      cases.push(`${RES}transfer-encoding: ${v}\r\n\r\n`);
      cases.push(`HTTP/1.0 200 OK\r\ntransfer-encoding: ${v}\r\n\r\n`);
      cases.push(`${REQ}Transfer-Encoding: ${v}\r\nContent-Length: 3\r\n\r\n`);
      cases.push(`${REQ}Transfer-Encoding: ${v}\r\nTransfer-Encoding: chunked\r\n\r\n`);
    }
    const conn = [
      'keep-alive',
      'Keep-Alive',
      'KEEP-ALIVE',
      'close',
      'Close',
      'keep-alive, close',
      'close, keep-alive',
      'Upgrade',
      'upgrade, keep-alive',
      ' , ,',
      '',
      'keep-alivex',
      'closed',
      'clos',
      'x-foo',
      'keep-alive,',
      '\u00a0close\u00a0',
      'close\u00a0',
      'TE, close',
    ];
    for (const a of conn) {
      cases.push(`${REQ}Connection: ${a}\r\n\r\n`);
      cases.push(`${RES}Connection: ${a}\r\n\r\n`);
      for (const b of ['close', 'x', 'keep-alive', 'a, b', 'Keep-Alive'])
        cases.push(`${REQ}Connection: ${a}\r\nConnection: ${b}\r\n\r\n`);
    }
    const lines = [
      'GET / HTTP/1.1',
      'GET  / HTTP/1.1',
      'GET / HTTP/1.1 ',
      ' GET / HTTP/1.1',
      'GET /',
      'GET',
      'GET / HTTP/1.2',
      'GET / HTTP/2.0',
      'GET / http/1.1',
      'GET / HTTP/1.10',
      'GET / HTTP/1.',
      'GET /a b HTTP/1.1',
      'G@T / HTTP/1.1',
      'GET /\u00ff HTTP/1.1',
      'GET * HTTP/1.0',
      '',
      'GET / HTTP/1.1\t',
      'GET\t/ HTTP/1.1',
      'GET / HTTP/1.0',
      'GET / HTTP/11.1',
      'GET / XTTP/1.1',
      'HTTP/1.1 200 OK',
      'HTTP/1.1 200',
      'HTTP/1.1 200 ',
      'HTTP/1.1 20',
      'HTTP/1.1 2000 OK',
      'HTTP/1.2 200 OK',
      'HTTP/1.1  200 OK',
      'HTTP/1.0 099 x',
      'HTTP/1.1 200 O\tK',
      'HTTP/1.1 200 \u00ff',
      'HTTP/1.1 200 O\u007fK',
      'HTTP/1.1 2a0 OK',
      'HTTP/1.1 200OK',
      'HTTP/1.1',
    ];
    for (const l of lines) {
      cases.push(`${l}\r\nHost: a\r\n\r\n`);
      cases.push(`\r\n\r\n${l}\r\nHost: a\r\n\r\n`);
      cases.push(`\r\n${l}\r\n\r\n`);
    }
    const fields = [
      'Host: a',
      'Host:',
      'Host: a\r\nhost: a',
      'Host : a',
      'Host\t: a',
      ' Host: a',
      '\tHost: a',
      'Host: a\r\n folded',
      'Host: a\nX: b',
      'Host: a\rX: b',
      'Ho st: a',
      ': a',
      'Host: a\u0000',
      'Host: a\u007f',
      'Host: \u00e9',
      'Host: a \t ',
      'Upgrade: websocket',
      'UPGRADE:  h2c  ',
      'Host: a\r\nUpgrade: a\r\nUpgrade: b',
      'X-Forwarded-For: 1.1.1.1',
      'x:',
      'x: ',
      'Host:\ta\t',
      'Host: a\u000b',
      'Host: a\f',
      'Cookie: a=1; b="2"',
    ];
    for (const f of fields) {
      cases.push(`GET / HTTP/1.1\r\n${f}\r\n\r\n`);
      cases.push(`GET / HTTP/1.0\r\n${f}\r\n\r\n`);
      cases.push(`${RES}${f}\r\n\r\n`);
    }
    for (let n = 18; n <= 22; n++) {
      const many = Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join('');
      cases.push(`${REQ}${many}\r\n`);
      cases.push(`${RES}${many}\r\n`);
    }
    cases.push(`${REQ}X: ${'a'.repeat(4096)}\r\n\r\n`);
    cases.push(`${REQ}X: ${'a'.repeat(4000)}\r\n\r\n`);
    let parsed = 0;
    for (const c of cases) parsed += agree(c);
    // Not all refused: the cases reach the field checks.
    expect(parsed).toBeGreaterThan(500);
  });

  it('agrees with every byte value at every position of small heads (replaced, inserted)', () => {
    const bases = [
      'GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nConnection: close\r\n\r\n',
      'POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\nTE: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n',
      'HTTP/1.0 404 No\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n',
    ];
    let parsed = 0;
    for (const base of bases) {
      const b = Buffer.from(base, 'latin1');
      for (let pos = 0; pos < b.length; pos++) {
        for (let v = 0; v < 256; v++) {
          const r = Buffer.from(b);
          r[pos] = v;
          parsed += agree(r, `replace ${pos} ${v}`, BYTE_AFTER);
          const ins = Buffer.concat([b.subarray(0, pos), Buffer.from([v]), b.subarray(pos)]);
          parsed += agree(ins, `insert ${pos} ${v}`, BYTE_AFTER);
        }
        parsed += agree(Buffer.concat([b.subarray(0, pos), b.subarray(pos + 1)]), `delete ${pos}`);
      }
    }
    expect(parsed).toBeGreaterThan(10_000);
    // About 127,000 heads through both parsers: 8.3 s in CI, beside vitest's 20 s default.
  }, 60_000);

  it('agrees on names that share a slot with a known name, and known names give or take a character', () => {
    const rand = rng(7);
    let parsed = 0;
    for (const known of KNOWN) {
      const names = [
        ...collisions(known, 3, rand),
        known.slice(1),
        known.slice(0, -1),
        `${known}x`,
        `x${known}`,
        `${known}-`,
        known.replace(/-/g, '_'),
        known.replace(/.$/, (c) => String.fromCharCode(c.charCodeAt(0) + 1)),
        known.toUpperCase(),
        randomCase(known, rand),
      ];
      for (const name of names) {
        for (const value of ['12', 'chunked', 'close', 'keep-alive', 'a, close', 'h']) {
          parsed += agree(`${REQ}${name}: ${value}\r\n\r\n`, name);
          parsed += agree(`GET / HTTP/1.0\r\n${name}: ${value}\r\n${name}: ${value}\r\n\r\n`, name);
          parsed += agree(`${RES}${name}:${value}\r\nContent-Length: 12\r\n\r\n`, name);
        }
      }
    }
    expect(parsed).toBeGreaterThan(5000);
  });

  it('agrees on 20 000 random heads', () => {
    const rand = rng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const names = [
      ...KNOWN,
      'x-custom',
      'a',
      'content-lengthx',
      'contentlength',
      'content_length',
      'transfer-encodin',
      'connectio',
      'hosts',
    ];
    const values = [
      '',
      ' ',
      '0',
      '12',
      '012',
      '999999999999999',
      '1000000000000000',
      'chunked',
      'Chunked',
      'close',
      'Keep-Alive',
      'keep-alive, close',
      'upgrade',
      'a,b',
      'h',
      'x y',
      '\u00e9',
      '\t1\t',
      '+1',
      '1 ',
      'close, x',
    ];
    const starts = [
      'GET / HTTP/1.1\r\n',
      'GET / HTTP/1.0\r\n',
      'POST /x HTTP/1.1\r\n',
      '\r\nGET / HTTP/1.1\r\n',
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.0 204 No Content\r\n',
      'HTTP/1.1 101 Switching\r\n',
    ];
    let parsed = 0;
    for (let n = 0; n < 20_000; n++) {
      let head = pick(starts);
      const count = Math.floor(rand() * 6);
      for (let k = 0; k < count; k++) {
        const name = rand() < 0.7 ? randomCase(pick(names), rand) : pick(names);
        const ws = pick(['', ' ', '  ', '\t']);
        head += `${name}:${ws}${pick(values)}${pick(['', ' ', '\t'])}\r\n`;
      }
      head += '\r\n';
      if (rand() < 0.2) {
        // One random byte somewhere.
        const b = Buffer.from(head, 'latin1');
        b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        parsed += agree(b, `random ${n}`);
      } else parsed += agree(head, `random ${n}`);
    }
    expect(parsed).toBeGreaterThan(20_000);
  });

  it("never lets a later head's parse change an earlier head's Connection tokens", () => {
    const parse = (s: string) => {
      const b = Buffer.from(s, 'latin1');
      const end = findHeadEnd(b, limits);
      return parseRequestHead(b, latin1(b, 0, end), end, limits);
    };
    const ka = parse(`${REQ}Connection: keep-alive\r\n\r\n`);
    const cl = parse(`${REQ}Connection: close\r\n\r\n`);
    const none = parse(`${REQ}\r\n`);
    const res = parseResponseHead(
      Buffer.from(`${RES}Connection: keep-alive\r\n\r\n`, 'latin1'),
      `${RES}Connection: keep-alive\r\n\r\n`,
      RES.length + 26,
      limits,
    );
    const later = [
      'keep-alive\r\nConnection: close',
      'close\r\nConnection: keep-alive',
      'keep-alive\r\nConnection: a, b',
      'close\r\nConnection: x',
      'Keep-Alive\r\nConnection: upgrade, te',
      'a, b\r\nConnection: close',
      'x\r\nConnection: keep-alive',
      ', ,\r\nConnection: keep-alive, close',
    ];
    const seen: (readonly string[])[] = [];
    for (const v of later) seen.push(parse(`${REQ}Connection: ${v}\r\n\r\n`).connection);
    expect(ka.connection).toEqual(['keep-alive']);
    expect(cl.connection).toEqual(['close']);
    expect(none.connection).toEqual([]);
    expect(res.connection).toEqual(['keep-alive']);
    expect(seen).toEqual([
      ['keep-alive', 'close'],
      ['close', 'keep-alive'],
      ['keep-alive', 'a', 'b'],
      ['close', 'x'],
      ['keep-alive', 'upgrade', 'te'],
      ['a', 'b', 'close'],
      ['x', 'keep-alive'],
      ['keep-alive', 'close'],
    ]);
    // Arrays of other heads are their own: nothing a head does to its list shows in another.
    expect(new Set([ka, cl, none, res].map((h) => h.connection)).size).toBeGreaterThan(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Fixture: the parser before caaa29f (6334a8e:packages/router/src/internal/http-head.ts),
// unchanged but for names (Old*, old*) and the module doc comment.
// ---------------------------------------------------------------------------------------------

/** Why a head was refused, with the status to answer. */
class OldHeadError extends Error {
  constructor(
    readonly status: 400 | 431 | 501 | 502 | 505,
    message: string,
  ) {
    super(message);
  }
}

/** Limits of the parser. */
interface OldHeadLimits {
  /** Most bytes of the whole head, CRLFs included. */
  readonly maxHeaderBytes: number;
  /** Most header fields. */
  readonly maxHeaderCount: number;
}

/** Framing and hop-by-hop facts every message head carries. */
interface OldHeadCommon {
  /** 10 for HTTP/1.0, 11 for HTTP/1.1. */
  readonly version: 10 | 11;
  /**
   * Header fields, flat: name, value, name, value... (names as sent). Request heads only: a
   * response head's is empty (its framing fields are parsed into the fields below).
   */
  readonly headers: string[];
  /** Lower-cased names, one per pair of `headers`. */
  readonly names: string[];
  /** The Content-Length, or -1 when absent. */
  readonly contentLength: number;
  /** Whether Transfer-Encoding is `chunked`. */
  readonly chunked: boolean;
  /** Connection tokens, lower-cased (`close`, `keep-alive`, `upgrade`, others). */
  readonly connection: string[];
  /** The bytes the head took, including the final CRLF CRLF. */
  readonly length: number;
  /**
   * Where each header line starts in the parsed text, then where the final CRLF starts:
   * header `i` is the bytes from `lineStarts[i]` to `lineStarts[i + 1]`, its CRLF included.
   */
  readonly lineStarts: number[];
}

/** A parsed request head. */
interface OldRequestHead extends OldHeadCommon {
  readonly method: string;
  /** Where the request line starts (after the empty lines a client may send before it). */
  readonly lineStart: number;
  readonly target: string;
  /** The Host header, or '' when absent. */
  readonly host: string;
  /** The Upgrade header, or '' when absent. */
  readonly upgrade: string;
}

/** A parsed response head. */
interface OldResponseHead extends OldHeadCommon {
  readonly status: number;
  /** The reason phrase as sent. */
  readonly reason: string;
}

/** tchar lookup: 1 for the bytes a header name or method may hold. */
const old_TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") old_TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) old_TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) old_TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) old_TCHAR[c] = 1;

/** Whether `s` is a token (RFC 9110 tchar, at least one). */
function old_isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (old_TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * Whether `s` is visible ASCII only, at least one character: a request target in
 * origin-form, absolute-form, authority-form or '*'.
 */
function old_isVisible(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** Whether `s` is 1 to `max` ASCII digits. */
function old_isDigits(s: string, max: number): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** `buf`'s bytes from `a` to `b` as a latin1 string (one character per byte). */
const oldLatin1 = (buf: Buffer, a: number, b: number): string =>
  (buf as unknown as { latin1Slice(a: number, b: number): string }).latin1Slice(a, b);

const old_CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Finds the end of a head in `buf` (the index just after CRLF CRLF), or -1 while it is not
 * complete. Throws 431 (502 for a response) when the head is longer than the limit. Only the
 * head is decoded afterwards: bytes after it (a body, pipelined requests) stay bytes.
 */
function oldFindHeadEnd(buf: Buffer, limits: OldHeadLimits, response = false): number {
  // Empty lines before a request line are ignored (RFC 9112 2.2): not the end of a head.
  let from = 0;
  if (!response) while (buf[from] === 13 && buf[from + 1] === 10) from += 2;
  const i = buf.indexOf(old_CRLF2, from);
  if (i === -1) {
    if (buf.length > limits.maxHeaderBytes)
      throw new OldHeadError(response ? 502 : 431, 'header section too large');
    return -1;
  }
  if (i + 4 > limits.maxHeaderBytes)
    throw new OldHeadError(response ? 502 : 431, 'header section too large');
  return i + 4;
}

interface OldFields {
  lineStarts: number[];
  headers: string[];
  names: string[];
  contentLength: number;
  chunked: boolean;
  connection: string[];
  host: string;
  upgrade: string;
}

/** The end (index of CR) of the line starting at `i`; throws on a bare CR or LF or a control byte when `strict`. */
function old_lineEnd(text: string, i: number, end: number, bad: 400 | 502): number {
  for (let j = i; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c === 13) {
      if (text.charCodeAt(j + 1) !== 10) throw new OldHeadError(bad, 'bare CR in head');
      return j;
    }
    if (c === 10) throw new OldHeadError(bad, 'bare LF in head');
  }
  throw new OldHeadError(bad, 'unterminated line');
}

// Scratch lists a head's fields are gathered in, copied out at their exact size: an array that
// grows from empty by push takes room for 17 elements at once, which was most of what parsing
// a head allocated. Entries past the current count are stale and never read.
const old_scratchStarts: number[] = [];
const old_scratchNames: string[] = [];
const old_scratchHeaders: string[] = [];
/** The Connection tokens of a head without any. */
const old_NO_TOKENS: string[] = [];

/**
 * Parses the field lines from `i` up to the final CRLF at `end - 2`. `values`: keep every
 * field's value in `headers` (a response head needs only those of its framing fields).
 */
function old_parseFields(
  text: string,
  i: number,
  end: number,
  limits: OldHeadLimits,
  bad: 400 | 502,
  values: boolean,
): OldFields {
  let count = 0;
  let contentLength = -1;
  let te: string | undefined;
  let connection = old_NO_TOKENS;
  let host: string | undefined;
  let upgrade = '';
  const last = end - 2;
  while (i < last) {
    old_scratchStarts[count] = i;
    const first = text.charCodeAt(i);
    if (first === 32 || first === 9)
      throw new OldHeadError(bad, 'obsolete line folding or whitespace before a field');
    const nameStart = i;
    let upper = false;
    for (;;) {
      const ch = text.charCodeAt(i);
      if (old_TCHAR[ch] !== 1) break;
      if (ch >= 65 && ch <= 90) upper = true;
      i++;
    }
    if (i === nameStart) throw new OldHeadError(bad, 'invalid header name');
    const colon = text.charCodeAt(i);
    if (colon !== 58)
      throw new OldHeadError(
        bad,
        colon === 32 || colon === 9 ? 'whitespace before colon' : 'invalid header name',
      );
    const name = text.slice(nameStart, i);
    i++;
    let c = text.charCodeAt(i);
    while (c === 32 || c === 9) c = text.charCodeAt(++i);
    const valueStart = i;
    // The head ends in CRLF CRLF, so a CR comes before `end`; NaN (past the text) stops too.
    while (c !== 13 && i < end) {
      if ((c < 32 && c !== 9) || c === 127)
        throw new OldHeadError(bad, 'invalid character in header value');
      c = text.charCodeAt(++i);
    }
    if (text.charCodeAt(i + 1) !== 10) throw new OldHeadError(bad, 'bare CR in head');
    let valueEnd = i;
    for (;;) {
      const e = text.charCodeAt(valueEnd - 1);
      if (valueEnd > valueStart && (e === 32 || e === 9)) valueEnd--;
      else break;
    }
    i += 2;
    if (count >= limits.maxHeaderCount)
      throw new OldHeadError(bad === 400 ? 431 : 502, 'too many header fields');
    const lower = upper ? name.toLowerCase() : name;
    let value = '';
    let sliced = false;
    switch (lower) {
      case 'content-length': {
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (!old_isDigits(value, 15)) throw new OldHeadError(bad, 'invalid Content-Length');
        const n = Number(value);
        if (contentLength !== -1 && contentLength !== n)
          throw new OldHeadError(bad, 'conflicting Content-Length');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (te !== undefined) throw new OldHeadError(bad, 'repeated Transfer-Encoding');
        te = value.toLowerCase();
        break;
      case 'connection':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (value.indexOf(',') === -1) {
          // One token (`keep-alive`, `close`): no split.
          const tok = value.trim().toLowerCase();
          if (tok !== '') connection = connection === old_NO_TOKENS ? [tok] : [...connection, tok];
        } else {
          if (connection === old_NO_TOKENS) connection = [];
          for (const t of value.split(',')) {
            const tok = t.trim().toLowerCase();
            if (tok !== '') connection.push(tok);
          }
        }
        break;
      case 'host':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (host !== undefined) throw new OldHeadError(bad, 'repeated Host');
        host = value;
        break;
      case 'upgrade':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        upgrade = value;
        break;
    }
    if (values) {
      old_scratchHeaders[2 * count] = name;
      old_scratchHeaders[2 * count + 1] = sliced ? value : text.slice(valueStart, valueEnd);
    }
    old_scratchNames[count] = lower;
    count++;
  }
  let chunked = false;
  if (te !== undefined) {
    if (contentLength !== -1)
      throw new OldHeadError(bad, 'both Content-Length and Transfer-Encoding');
    if (te !== 'chunked')
      throw new OldHeadError(
        bad === 400 ? 501 : 502,
        'unsupported Transfer-Encoding (only chunked)',
      );
    chunked = true;
  }
  old_scratchStarts[count] = i;
  const lineStarts = old_scratchStarts.slice(0, count + 1);
  const names = old_scratchNames.slice(0, count);
  const headers = values ? old_scratchHeaders.slice(0, 2 * count) : [];
  return {
    lineStarts,
    headers,
    names,
    contentLength,
    chunked,
    connection,
    host: host ?? '',
    upgrade,
  };
}

/** Parses a request head that ends at `end` (from {@link findHeadEnd}) in `text`. */
function oldParseRequestHead(text: string, end: number, limits: OldHeadLimits): OldRequestHead {
  // Leading empty lines before a request line are ignored (RFC 9112 2.2).
  let start = 0;
  while (start + 1 < end && text.charCodeAt(start) === 13 && text.charCodeAt(start + 1) === 10)
    start += 2;
  const le = old_lineEnd(text, start, end, 400);
  const first = text.slice(start, le);
  const sp1 = first.indexOf(' ');
  let sp2 = first.length - 1;
  while (sp2 >= 0 && first.charCodeAt(sp2) !== 32) sp2--;
  if (sp1 <= 0 || sp2 === sp1) throw new OldHeadError(400, 'malformed request line');
  const method = first.slice(0, sp1);
  const target = first.slice(sp1 + 1, sp2);
  const proto = first.slice(sp2 + 1);
  if (!old_isToken(method)) throw new OldHeadError(400, 'invalid method');
  if (!old_isVisible(target)) throw new OldHeadError(400, 'invalid request target');
  let version: 10 | 11;
  if (proto === 'HTTP/1.1') version = 11;
  else if (proto === 'HTTP/1.0') version = 10;
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(proto))
    throw new OldHeadError(505, 'HTTP version not supported');
  else throw new OldHeadError(400, 'malformed request line');
  const f = old_parseFields(text, le + 2, end, limits, 400, true);
  if (version === 11 && f.host === '') throw new OldHeadError(400, 'missing Host header');
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a backend
  // may read its body as the next request).
  if (version === 10 && f.chunked)
    throw new OldHeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
  return {
    method,
    lineStart: start,
    target,
    version,
    lineStarts: f.lineStarts,
    headers: f.headers,
    names: f.names,
    contentLength: f.contentLength,
    chunked: f.chunked,
    connection: f.connection,
    host: f.host,
    upgrade: f.upgrade,
    length: end,
  };
}

/** Parses a response head that ends at `end` in `text`. Failures are 502s. */
function oldParseResponseHead(text: string, end: number, limits: OldHeadLimits): OldResponseHead {
  const le = old_lineEnd(text, 0, end, 502);
  // HTTP/1.x SP 3DIGIT [SP reason]
  const minor = text.charCodeAt(7);
  const d0 = text.charCodeAt(9) - 48;
  const d1 = text.charCodeAt(10) - 48;
  const d2 = text.charCodeAt(11) - 48;
  if (
    le < 12 ||
    !text.startsWith('HTTP/1.', 0) ||
    (minor !== 48 && minor !== 49) ||
    text.charCodeAt(8) !== 32 ||
    !(d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) ||
    (le > 12 && text.charCodeAt(12) !== 32)
  )
    throw new OldHeadError(502, 'malformed upstream status line');
  // The reason phrase goes to the client as it came: no control bytes (HTAB allowed).
  for (let j = 13; j < le; j++) {
    const c = text.charCodeAt(j);
    if ((c < 32 && c !== 9) || c === 127)
      throw new OldHeadError(502, 'invalid character in upstream reason phrase');
  }
  const f = old_parseFields(text, le + 2, end, limits, 502, false);
  if (minor === 48 && f.chunked)
    throw new OldHeadError(502, 'Transfer-Encoding in an HTTP/1.0 response');
  return {
    version: minor === 49 ? 11 : 10,
    status: d0 * 100 + d1 * 10 + d2,
    reason: le > 13 ? text.slice(13, le) : '',
    lineStarts: f.lineStarts,
    headers: f.headers,
    names: f.names,
    contentLength: f.contentLength,
    chunked: f.chunked,
    connection: f.connection,
    length: end,
  };
}
