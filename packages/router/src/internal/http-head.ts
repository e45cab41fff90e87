/**
 * A strict, bounded parser for HTTP/1.x message heads (request and status lines plus header
 * fields). It reads a head as a latin1 string (one character per byte, so offsets are byte
 * offsets and the bytes come back unchanged when written as latin1): one decode per head
 * instead of a Buffer slice per field. Strict on purpose: it is the router's defence against request smuggling, so
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
export interface RequestHead extends HeadCommon {
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
export interface ResponseHead extends HeadCommon {
  readonly status: number;
  /** The reason phrase as sent. */
  readonly reason: string;
}

/** tchar lookup: 1 for the bytes a header name or method may hold. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** Whether `s` is a token (RFC 9110 tchar, at least one). */
function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * Whether `s` is visible ASCII only, at least one character: a request target in
 * origin-form, absolute-form, authority-form or '*'.
 */
function isVisible(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** Whether `s` is 1 to `max` ASCII digits. */
function isDigits(s: string, max: number): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** `buf`'s bytes from `a` to `b` as a latin1 string (one character per byte). */
export const latin1 = (buf: Buffer, a: number, b: number): string =>
  (buf as unknown as { latin1Slice(a: number, b: number): string }).latin1Slice(a, b);

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Finds the end of a head in `buf` (the index just after CRLF CRLF), or -1 while it is not
 * complete. Throws 431 (502 for a response) when the head is longer than the limit. Only the
 * head is decoded afterwards: bytes after it (a body, pipelined requests) stay bytes.
 */
export function findHeadEnd(buf: Buffer, limits: HeadLimits, response = false): number {
  // Empty lines before a request line are ignored (RFC 9112 2.2): not the end of a head.
  let from = 0;
  if (!response) while (buf[from] === 13 && buf[from + 1] === 10) from += 2;
  const i = buf.indexOf(CRLF2, from);
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
function lineEnd(text: string, i: number, end: number, bad: 400 | 502): number {
  for (let j = i; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c === 13) {
      if (text.charCodeAt(j + 1) !== 10) throw new HeadError(bad, 'bare CR in head');
      return j;
    }
    if (c === 10) throw new HeadError(bad, 'bare LF in head');
  }
  throw new HeadError(bad, 'unterminated line');
}

// Scratch lists a head's fields are gathered in, copied out at their exact size: an array that
// grows from empty by push takes room for 17 elements at once, which was most of what parsing
// a head allocated. Entries past the current count are stale and never read.
const scratchStarts: number[] = [];
const scratchNames: string[] = [];
const scratchHeaders: string[] = [];
/** The Connection tokens of a head without any. */
const NO_TOKENS: string[] = [];

/**
 * Parses the field lines from `i` up to the final CRLF at `end - 2`. `values`: keep every
 * field's value in `headers` (a response head needs only those of its framing fields).
 */
function parseFields(
  text: string,
  i: number,
  end: number,
  limits: HeadLimits,
  bad: 400 | 502,
  values: boolean,
): Fields {
  let count = 0;
  let contentLength = -1;
  let te: string | undefined;
  let connection = NO_TOKENS;
  let host: string | undefined;
  let upgrade = '';
  const last = end - 2;
  while (i < last) {
    scratchStarts[count] = i;
    const first = text.charCodeAt(i);
    if (first === 32 || first === 9)
      throw new HeadError(bad, 'obsolete line folding or whitespace before a field');
    const nameStart = i;
    let upper = false;
    for (;;) {
      const ch = text.charCodeAt(i);
      if (TCHAR[ch] !== 1) break;
      if (ch >= 65 && ch <= 90) upper = true;
      i++;
    }
    if (i === nameStart) throw new HeadError(bad, 'invalid header name');
    const colon = text.charCodeAt(i);
    if (colon !== 58)
      throw new HeadError(
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
        throw new HeadError(bad, 'invalid character in header value');
      c = text.charCodeAt(++i);
    }
    if (text.charCodeAt(i + 1) !== 10) throw new HeadError(bad, 'bare CR in head');
    let valueEnd = i;
    for (;;) {
      const e = text.charCodeAt(valueEnd - 1);
      if (valueEnd > valueStart && (e === 32 || e === 9)) valueEnd--;
      else break;
    }
    i += 2;
    if (count >= limits.maxHeaderCount)
      throw new HeadError(bad === 400 ? 431 : 502, 'too many header fields');
    const lower = upper ? name.toLowerCase() : name;
    let value = '';
    let sliced = false;
    switch (lower) {
      case 'content-length': {
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (!isDigits(value, 15)) throw new HeadError(bad, 'invalid Content-Length');
        const n = Number(value);
        if (contentLength !== -1 && contentLength !== n)
          throw new HeadError(bad, 'conflicting Content-Length');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (te !== undefined) throw new HeadError(bad, 'repeated Transfer-Encoding');
        te = value.toLowerCase();
        break;
      case 'connection':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (value.indexOf(',') === -1) {
          // One token (`keep-alive`, `close`): no split.
          const tok = value.trim().toLowerCase();
          if (tok !== '') connection = connection === NO_TOKENS ? [tok] : [...connection, tok];
        } else {
          if (connection === NO_TOKENS) connection = [];
          for (const t of value.split(',')) {
            const tok = t.trim().toLowerCase();
            if (tok !== '') connection.push(tok);
          }
        }
        break;
      case 'host':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (host !== undefined) throw new HeadError(bad, 'repeated Host');
        host = value;
        break;
      case 'upgrade':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        upgrade = value;
        break;
    }
    if (values) {
      scratchHeaders[2 * count] = name;
      scratchHeaders[2 * count + 1] = sliced ? value : text.slice(valueStart, valueEnd);
    }
    scratchNames[count] = lower;
    count++;
  }
  let chunked = false;
  if (te !== undefined) {
    if (contentLength !== -1) throw new HeadError(bad, 'both Content-Length and Transfer-Encoding');
    if (te !== 'chunked')
      throw new HeadError(bad === 400 ? 501 : 502, 'unsupported Transfer-Encoding (only chunked)');
    chunked = true;
  }
  scratchStarts[count] = i;
  const lineStarts = scratchStarts.slice(0, count + 1);
  const names = scratchNames.slice(0, count);
  const headers = values ? scratchHeaders.slice(0, 2 * count) : [];
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
export function parseRequestHead(text: string, end: number, limits: HeadLimits): RequestHead {
  // Leading empty lines before a request line are ignored (RFC 9112 2.2).
  let start = 0;
  while (start + 1 < end && text.charCodeAt(start) === 13 && text.charCodeAt(start + 1) === 10)
    start += 2;
  const le = lineEnd(text, start, end, 400);
  const first = text.slice(start, le);
  const sp1 = first.indexOf(' ');
  let sp2 = first.length - 1;
  while (sp2 >= 0 && first.charCodeAt(sp2) !== 32) sp2--;
  if (sp1 <= 0 || sp2 === sp1) throw new HeadError(400, 'malformed request line');
  const method = first.slice(0, sp1);
  const target = first.slice(sp1 + 1, sp2);
  const proto = first.slice(sp2 + 1);
  if (!isToken(method)) throw new HeadError(400, 'invalid method');
  if (!isVisible(target)) throw new HeadError(400, 'invalid request target');
  let version: 10 | 11;
  if (proto === 'HTTP/1.1') version = 11;
  else if (proto === 'HTTP/1.0') version = 10;
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(proto))
    throw new HeadError(505, 'HTTP version not supported');
  else throw new HeadError(400, 'malformed request line');
  const f = parseFields(text, le + 2, end, limits, 400, true);
  if (version === 11 && f.host === '') throw new HeadError(400, 'missing Host header');
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a backend
  // may read its body as the next request).
  if (version === 10 && f.chunked)
    throw new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
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
export function parseResponseHead(text: string, end: number, limits: HeadLimits): ResponseHead {
  const le = lineEnd(text, 0, end, 502);
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
    throw new HeadError(502, 'malformed upstream status line');
  // The reason phrase goes to the client as it came: no control bytes (HTAB allowed).
  for (let j = 13; j < le; j++) {
    const c = text.charCodeAt(j);
    if ((c < 32 && c !== 9) || c === 127)
      throw new HeadError(502, 'invalid character in upstream reason phrase');
  }
  const f = parseFields(text, le + 2, end, limits, 502, false);
  if (minor === 48 && f.chunked)
    throw new HeadError(502, 'Transfer-Encoding in an HTTP/1.0 response');
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
