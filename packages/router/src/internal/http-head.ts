/**
 * A strict, bounded parser for HTTP/1.x message heads (request and status lines plus header
 * fields). It scans a head's bytes and takes the strings it keeps from the same head decoded
 * as latin1 (one character per byte, so offsets are byte offsets and the bytes come back
 * unchanged when written as latin1): one decode per head instead of a Buffer slice per field,
 * and byte loads instead of `charCodeAt` (a third of the time for a typical head). Strict on purpose: it is the router's defence against request smuggling, so
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
   * Header fields, flat: lower-cased name, value, name, value... Request heads only: a
   * response head's is empty (its framing fields are parsed into the fields below).
   */
  readonly headers: string[];
  /** Lower-cased names, one per pair of `headers`. */
  readonly names: string[];
  /** The Content-Length, or -1 when absent. */
  readonly contentLength: number;
  /** Whether Transfer-Encoding is `chunked`. */
  readonly chunked: boolean;
  /**
   * Connection tokens, lower-cased (`close`, `keep-alive`, `upgrade`, others). Read-only: the
   * lists of one `keep-alive` or `close` token (and the empty one) are shared by every head.
   */
  readonly connection: readonly string[];
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

/** tchar (RFC 9110 5.6.2) lookup: 1 for the bytes a header name or method may hold. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** Whether bytes `a` to `b` of `buf` are a token (RFC 9110 tchar, at least one). */
function isToken(buf: Uint8Array, a: number, b: number): boolean {
  if (a >= b) return false;
  for (let i = a; i < b; i++) if (TCHAR[buf[i] as number] !== 1) return false;
  return true;
}

/**
 * Whether bytes `a` to `b` of `buf` are visible ASCII only, at least one: a request target in
 * origin-form, absolute-form, authority-form or '*'.
 */
function isVisible(buf: Uint8Array, a: number, b: number): boolean {
  if (a >= b) return false;
  for (let i = a; i < b; i++) {
    const c = buf[i] as number;
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** The number that bytes `a` to `b` of `buf` write in 1 to `max` ASCII digits, or -1. */
function digits(buf: Uint8Array, a: number, b: number, max: number): number {
  if (a >= b || b - a > max) return -1;
  let n = 0;
  for (let i = a; i < b; i++) {
    const c = buf[i] as number;
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n;
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

/**
 * Header names common enough to be returned as these constants, matched in place: no slice and
 * no lower-casing per field, and the framing checks below compare them by identity. Any other
 * name is sliced and lower-cased.
 */
const KNOWN_NAMES = [
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
/** The hash of a lower-cased name, as the parser computes it while scanning (a Smi). */
function nameHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
/** Known names by `slot(hash)`; of two in one slot, the first is kept (the other is sliced). */
const KNOWN: (string | undefined)[] = new Array<string | undefined>(4096).fill(undefined);
const slot = (hash: number): number => (hash ^ (hash >>> 12)) & 4095;
for (const n of KNOWN_NAMES) KNOWN[slot(nameHash(n))] ??= n;

/** Whether `buf` from `at` holds `lower` in any case (`lower`: lower-case tchars). */
function sameName(buf: Uint8Array, at: number, lower: string): boolean {
  for (let j = 0; j < lower.length; j++) {
    let c = buf[at + j] as number;
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(j)) return false;
  }
  return true;
}

interface Fields {
  lineStarts: number[];
  headers: string[];
  names: string[];
  contentLength: number;
  chunked: boolean;
  connection: readonly string[];
  host: string;
  upgrade: string;
}

/** The end (index of CR) of the line starting at `i` in `buf`; throws on a bare CR or LF. */
function lineEnd(buf: Uint8Array, i: number, end: number, bad: 400 | 502): number {
  for (let j = i; j < end; j++) {
    const c = buf[j];
    if (c === 13) {
      if (buf[j + 1] !== 10) throw new HeadError(bad, 'bare CR in head');
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
/** The Connection tokens of a head without any. Shared: never changed. */
const NO_TOKENS: string[] = [];
/** The Connection tokens of a head with one Connection header of `keep-alive` (or `close`). */
const KEEP_ALIVE = ['keep-alive'];
const CLOSE = ['close'];

/**
 * Parses the field lines from `i` up to the final CRLF at `end - 2` of `buf` (`text`: the same
 * bytes as latin1, for the strings kept). `values`: keep every field's value in `headers` (a
 * response head needs only those of its framing fields).
 */
function parseFields(
  buf: Uint8Array,
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
    const first = buf[i];
    if (first === 32 || first === 9)
      throw new HeadError(bad, 'obsolete line folding or whitespace before a field');
    const nameStart = i;
    let upper = false;
    let hash = 0;
    for (;;) {
      let ch = buf[i] as number;
      if (TCHAR[ch] !== 1) break;
      if (ch >= 65 && ch <= 90) {
        upper = true;
        ch += 32;
      }
      hash = (Math.imul(hash, 31) + ch) | 0;
      i++;
    }
    if (i === nameStart) throw new HeadError(bad, 'invalid header name');
    const colon = buf[i];
    if (colon !== 58)
      throw new HeadError(
        bad,
        colon === 32 || colon === 9 ? 'whitespace before colon' : 'invalid header name',
      );
    let lower = KNOWN[slot(hash)];
    if (lower === undefined || lower.length !== i - nameStart || !sameName(buf, nameStart, lower)) {
      const name = text.slice(nameStart, i);
      lower = upper ? name.toLowerCase() : name;
    }
    i++;
    let c = buf[i] as number;
    while (c === 32 || c === 9) c = buf[++i] as number;
    const valueStart = i;
    // The head ends in CRLF CRLF, so a CR comes before `end`; NaN (past the text) stops too.
    while (c !== 13 && i < end) {
      if ((c < 32 && c !== 9) || c === 127)
        throw new HeadError(bad, 'invalid character in header value');
      c = buf[++i] as number;
    }
    if (buf[i + 1] !== 10) throw new HeadError(bad, 'bare CR in head');
    let valueEnd = i;
    for (;;) {
      const e = buf[valueEnd - 1];
      if (valueEnd > valueStart && (e === 32 || e === 9)) valueEnd--;
      else break;
    }
    i += 2;
    if (count >= limits.maxHeaderCount)
      throw new HeadError(bad === 400 ? 431 : 502, 'too many header fields');
    let value = '';
    let sliced = false;
    switch (lower) {
      case 'content-length': {
        const n = digits(buf, valueStart, valueEnd, 15);
        if (n === -1) throw new HeadError(bad, 'invalid Content-Length');
        if (contentLength !== -1 && contentLength !== n)
          throw new HeadError(bad, 'conflicting Content-Length');
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (te !== undefined) throw new HeadError(bad, 'repeated Transfer-Encoding');
        te =
          valueEnd - valueStart === 7 && sameName(buf, valueStart, 'chunked') ? 'chunked' : value;
        break;
      case 'connection':
        if (valueEnd - valueStart === 10 && sameName(buf, valueStart, 'keep-alive')) {
          connection = connection === NO_TOKENS ? KEEP_ALIVE : [...connection, 'keep-alive'];
          break;
        }
        if (valueEnd - valueStart === 5 && sameName(buf, valueStart, 'close')) {
          connection = connection === NO_TOKENS ? CLOSE : [...connection, 'close'];
          break;
        }
        value = text.slice(valueStart, valueEnd);
        sliced = true;
        if (value.indexOf(',') === -1) {
          // One token (`keep-alive`, `close`): no split.
          const tok = value.trim().toLowerCase();
          if (tok !== '') connection = connection === NO_TOKENS ? [tok] : [...connection, tok];
        } else {
          // A list of its own (the constants are shared by every head).
          if (connection === NO_TOKENS || connection === KEEP_ALIVE || connection === CLOSE)
            connection = connection.slice();
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
      scratchHeaders[2 * count] = lower;
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

/**
 * Parses a request head that ends at `end` (from {@link findHeadEnd}) in `buf`; `text` holds
 * (at least) its bytes as latin1.
 */
export function parseRequestHead(
  buf: Uint8Array,
  text: string,
  end: number,
  limits: HeadLimits,
): RequestHead {
  // Leading empty lines before a request line are ignored (RFC 9112 2.2).
  let start = 0;
  while (start + 1 < end && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const le = lineEnd(buf, start, end, 400);
  let sp1 = start;
  while (sp1 < le && buf[sp1] !== 32) sp1++;
  let sp2 = le - 1;
  while (sp2 >= start && buf[sp2] !== 32) sp2--;
  if (sp1 === start || sp1 === le || sp2 === sp1)
    throw new HeadError(400, 'malformed request line');
  if (!isToken(buf, start, sp1)) throw new HeadError(400, 'invalid method');
  if (!isVisible(buf, sp1 + 1, sp2)) throw new HeadError(400, 'invalid request target');
  let version: 10 | 11;
  if (
    le - sp2 === 9 &&
    buf[sp2 + 1] === 72 && // HTTP/1.
    buf[sp2 + 2] === 84 &&
    buf[sp2 + 3] === 84 &&
    buf[sp2 + 4] === 80 &&
    buf[sp2 + 5] === 47 &&
    buf[sp2 + 6] === 49 &&
    buf[sp2 + 7] === 46 &&
    (buf[sp2 + 8] === 49 || buf[sp2 + 8] === 48)
  )
    version = buf[sp2 + 8] === 49 ? 11 : 10;
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(text.slice(sp2 + 1, le)))
    throw new HeadError(505, 'HTTP version not supported');
  else throw new HeadError(400, 'malformed request line');
  const method = text.slice(start, sp1);
  const target = text.slice(sp1 + 1, sp2);
  const f = parseFields(buf, text, le + 2, end, limits, 400, true);
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

/**
 * Parses a response head that ends at `end` in `buf`; `text` holds (at least) its bytes as
 * latin1. Failures are 502s.
 */
export function parseResponseHead(
  buf: Uint8Array,
  text: string,
  end: number,
  limits: HeadLimits,
): ResponseHead {
  const le = lineEnd(buf, 0, end, 502);
  // HTTP/1.x SP 3DIGIT [SP reason]
  const minor = buf[7];
  const d0 = (buf[9] as number) - 48;
  const d1 = (buf[10] as number) - 48;
  const d2 = (buf[11] as number) - 48;
  if (
    le < 12 ||
    !text.startsWith('HTTP/1.', 0) ||
    (minor !== 48 && minor !== 49) ||
    buf[8] !== 32 ||
    !(d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) ||
    (le > 12 && buf[12] !== 32)
  )
    throw new HeadError(502, 'malformed upstream status line');
  // The reason phrase goes to the client as it came: no control bytes (HTAB allowed).
  for (let j = 13; j < le; j++) {
    const c = buf[j] as number;
    if ((c < 32 && c !== 9) || c === 127)
      throw new HeadError(502, 'invalid character in upstream reason phrase');
  }
  const f = parseFields(buf, text, le + 2, end, limits, 502, false);
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
