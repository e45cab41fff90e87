/**
 * A strict, bounded parser for HTTP/1.x message heads (request and status lines plus header
 * fields). Strict on purpose: it is the router's defence against request smuggling, so
 * anything ambiguous (bare LF, obs-fold, a space before the colon, both Content-Length and
 * Transfer-Encoding, conflicting lengths, a transfer coding other than `chunked`) is refused.
 */

/** Why a head was refused, with the status to answer. */
export class HeadError extends Error {
  constructor(
    readonly status: 400 | 431 | 501 | 502 | 505,
    message: string,
  ) {
    super(message);
  }
}

/** Limits of the parser. */
export interface HeadLimits {
  /** Most bytes of the whole head, CRLFs included. */
  readonly maxHeaderBytes: number;
  /** Most header fields. */
  readonly maxHeaderCount: number;
}

/** Framing and hop-by-hop facts every message head carries. */
interface HeadCommon {
  /** 10 for HTTP/1.0, 11 for HTTP/1.1. */
  readonly version: 10 | 11;
  /** Header fields, flat: name, value, name, value... (names as sent). */
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
}

/** A parsed request head. */
export interface RequestHead extends HeadCommon {
  readonly method: string;
  readonly target: string;
  /** The Host header, or '' when absent. */
  readonly host: string;
  /** The Upgrade header, or '' when absent. */
  readonly upgrade: string;
}

/** A parsed response head. */
export interface ResponseHead extends HeadCommon {
  readonly status: number;
  /** The reason phrase as sent. */
  readonly reason: string;
}

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Control characters other than HTAB, and DEL, are refused in field values.
const BAD_VALUE_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
// origin-form, absolute-form, authority-form or '*': visible ASCII only.
const TARGET_RE = /^[\x21-\x7e]+$/;
const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Finds the end of a head in `buf` (the index just after CRLF CRLF), or -1. Throws 431 when
 * the head is already longer than the limit.
 */
export function findHeadEnd(buf: Buffer, limits: HeadLimits, response = false): number {
  const i = buf.indexOf(CRLF2);
  if (i === -1) {
    if (buf.length > limits.maxHeaderBytes)
      throw new HeadError(response ? 502 : 431, 'header section too large');
    return -1;
  }
  if (i + 4 > limits.maxHeaderBytes)
    throw new HeadError(response ? 502 : 431, 'header section too large');
  return i + 4;
}

interface Fields {
  headers: string[];
  names: string[];
  contentLength: number;
  chunked: boolean;
  connection: string[];
  host: string;
  upgrade: string;
}

function parseFields(lines: string[], limits: HeadLimits, bad: 400 | 502): Fields {
  const count = lines.length - 1;
  if (count > limits.maxHeaderCount)
    throw new HeadError(bad === 400 ? 431 : 502, 'too many header fields');
  const headers: string[] = [];
  const names: string[] = [];
  let contentLength = -1;
  let te: string | undefined;
  const connection: string[] = [];
  let host: string | undefined;
  let upgrade = '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HeadError(bad, 'malformed header line');
    const name = line.slice(0, colon);
    if (!TOKEN_RE.test(name)) throw new HeadError(bad, 'invalid header name');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE_RE.test(value)) throw new HeadError(bad, 'invalid character in header value');
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length': {
        if (!/^[0-9]{1,15}$/.test(value)) throw new HeadError(bad, 'invalid Content-Length');
        const n = Number(value);
        if (contentLength !== -1 && contentLength !== n)
          throw new HeadError(bad, 'conflicting Content-Length');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        if (te !== undefined) throw new HeadError(bad, 'repeated Transfer-Encoding');
        te = value.toLowerCase();
        break;
      case 'connection':
        for (const t of value.split(',')) {
          const tok = t.trim().toLowerCase();
          if (tok !== '') connection.push(tok);
        }
        break;
      case 'host':
        if (host !== undefined) throw new HeadError(bad, 'repeated Host');
        host = value;
        break;
      case 'upgrade':
        upgrade = value;
        break;
    }
    headers.push(name, value);
    names.push(lower);
  }
  let chunked = false;
  if (te !== undefined) {
    if (contentLength !== -1) throw new HeadError(bad, 'both Content-Length and Transfer-Encoding');
    if (te !== 'chunked')
      throw new HeadError(bad === 400 ? 501 : 502, 'unsupported Transfer-Encoding (only chunked)');
    chunked = true;
  }
  return { headers, names, contentLength, chunked, connection, host: host ?? '', upgrade };
}

function splitLines(buf: Buffer, end: number): string[] {
  // Leading empty lines before a request line are ignored (RFC 9112 2.2).
  let start = 0;
  while (start + 1 < end && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const text = buf.toString('latin1', start, end - 4);
  const lines = text.split('\r\n');
  for (const line of lines) {
    if (line.includes('\n') || line.includes('\r'))
      throw new HeadError(400, 'bare CR or LF in head');
    if (line.length > 0 && (line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9)) {
      throw new HeadError(400, 'obsolete line folding or whitespace before a field');
    }
  }
  return lines;
}

/** Parses a request head that ends at `end` (from {@link findHeadEnd}). */
export function parseRequestHead(buf: Buffer, end: number, limits: HeadLimits): RequestHead {
  const lines = splitLines(buf, end);
  const first = lines[0]!;
  const sp1 = first.indexOf(' ');
  const sp2 = first.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 === sp1) throw new HeadError(400, 'malformed request line');
  const method = first.slice(0, sp1);
  const target = first.slice(sp1 + 1, sp2);
  const proto = first.slice(sp2 + 1);
  if (!TOKEN_RE.test(method)) throw new HeadError(400, 'invalid method');
  if (!TARGET_RE.test(target)) throw new HeadError(400, 'invalid request target');
  let version: 10 | 11;
  if (proto === 'HTTP/1.1') version = 11;
  else if (proto === 'HTTP/1.0') version = 10;
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(proto))
    throw new HeadError(505, 'HTTP version not supported');
  else throw new HeadError(400, 'malformed request line');
  const f = parseFields(lines, limits, 400);
  if (version === 11 && f.host === '') throw new HeadError(400, 'missing Host header');
  return { method, target, version, ...f, length: end };
}

/** Parses a response head that ends at `end`. Failures are 502s. */
export function parseResponseHead(buf: Buffer, end: number, limits: HeadLimits): ResponseHead {
  let lines: string[];
  try {
    lines = splitLines(buf, end);
  } catch {
    throw new HeadError(502, 'malformed upstream response head');
  }
  const first = lines[0]!;
  const m = /^HTTP\/1\.([01]) ([0-9]{3})(?: (.*))?$/.exec(first);
  if (m === null) throw new HeadError(502, 'malformed upstream status line');
  const f = parseFields(lines, limits, 502);
  return {
    version: m[1] === '1' ? 11 : 10,
    status: Number(m[2]),
    reason: m[3] ?? '',
    ...f,
    length: end,
  };
}
