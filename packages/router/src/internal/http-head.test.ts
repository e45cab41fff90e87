// The head parser on its own: what it returns for the heads browsers, Node and wrk send, and
// what it refuses. The router's hardening tests try the same through real sockets.
import { describe, expect, it } from 'vitest';
import {
  findHeadEnd,
  HeadError,
  latin1,
  parseRequestHead,
  parseResponseHead,
} from './http-head.js';

const limits = { maxHeaderBytes: 16 * 1024, maxHeaderCount: 100 };

function request(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, limits);
  return parseRequestHead(buf, latin1(buf, 0, end), end, limits);
}
function response(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, limits, true);
  // The router decodes the head and the body bytes after it at once.
  return parseResponseHead(buf, latin1(buf, 0, buf.length), end, limits);
}
function refusal(parse: () => unknown): [number, string] | undefined {
  try {
    parse();
  } catch (err) {
    if (err instanceof HeadError) return [err.status, err.message];
    throw err;
  }
  return undefined;
}

describe('parseRequestHead', () => {
  it('reads a browser request: names lower-cased in any case, values as sent', () => {
    const h = request(
      'GET /a?b=1 HTTP/1.1\r\nHost: demo.localhost\r\nUSER-AGENT: x/1\r\nX-Custom-Thing:  v a l  \r\n' +
        'cookie: a=b\r\nConnection: Keep-Alive\r\nContent-Length: 0012\r\n\r\nbody',
    );
    expect(h).toMatchObject({
      method: 'GET',
      target: '/a?b=1',
      version: 11,
      host: 'demo.localhost',
      contentLength: 12,
      chunked: false,
      connection: ['keep-alive'],
    });
    expect(h.names).toEqual([
      'host',
      'user-agent',
      'x-custom-thing',
      'cookie',
      'connection',
      'content-length',
    ]);
    expect(h.headers.filter((_, i) => i % 2 === 1)).toEqual([
      'demo.localhost',
      'x/1',
      'v a l',
      'a=b',
      'Keep-Alive',
      '0012',
    ]);
    // Each header line: from its start up to the next one's.
    expect(h.lineStarts.length).toBe(h.names.length + 1);
  });

  it('gives every head its own Connection token list', () => {
    const a = request(
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: x, y\r\n\r\n',
    );
    const b = request('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n');
    expect(a.connection).toEqual(['keep-alive', 'x', 'y']);
    expect(b.connection).toEqual(['keep-alive']);
    const c = request('GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n');
    expect(c.connection).toEqual(['close']);
    expect(request('GET / HTTP/1.0\r\n\r\n').connection).toEqual([]);
  });

  it('reads a chunked body in any case, and HTTP/1.0 without Host', () => {
    expect(
      request('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n').chunked,
    ).toBe(true);
    expect(request('\r\nGET / HTTP/1.0\r\n\r\n')).toMatchObject({ version: 10, host: '' });
  });

  it.each([
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', 501],
    ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n', 400],
    ['GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', 400],
    ['GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    [' GET / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400],
    ['GET /\r\nHost: a\r\n\r\n', 400],
    ['GET\r\nHost: a\r\n\r\n', 400],
    ['G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
    ['GET / http/1.1\r\nHost: a\r\n\r\n', 400],
    ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
    ['POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
  ])('refuses %j with %i', (text, status) => {
    expect(refusal(() => request(text))?.[0]).toBe(status);
  });

  it('refuses more fields than the limit with 431', () => {
    const many = Array.from({ length: 101 }, (_, i) => `x-h${i}: v\r\n`).join('');
    expect(refusal(() => request(`GET / HTTP/1.1\r\nHost: a\r\n${many}\r\n`))?.[0]).toBe(431);
  });
});

describe('parseResponseHead', () => {
  it("reads Node's response: status, framing and Connection tokens", () => {
    const h = response(
      'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 17\r\n' +
        'Date: Tue, 01 Dec 2026 21:48:11 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=65\r\n\r\n' +
        '{"hello":"world"}',
    );
    expect(h).toMatchObject({
      version: 11,
      status: 200,
      reason: 'OK',
      contentLength: 17,
      chunked: false,
      connection: ['keep-alive'],
      headers: [],
    });
    expect(h.names).toEqual(['content-type', 'content-length', 'date', 'connection', 'keep-alive']);
  });

  it('reads HTTP/1.0, an empty reason and a chunked body', () => {
    expect(response('HTTP/1.0 204\r\n\r\n')).toMatchObject({
      version: 10,
      status: 204,
      reason: '',
    });
    expect(response('HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\n').chunked).toBe(true);
  });

  it.each([
    'HTTP/1.1 20 OK\r\n\r\n',
    'HTTP/2.0 200 OK\r\n\r\n',
    'HTTP/1.1 200 O\x01K\r\n\r\n',
    'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
  ])('refuses %j with 502', (text) => {
    expect(refusal(() => response(text))?.[0]).toBe(502);
  });
});
