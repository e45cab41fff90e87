/**
 * Tracks where an HTTP/1.1 body ends in a byte stream, without copying it: a fixed length,
 * chunked (validated strictly: hex sizes, bounded extensions and trailers, CRLFs where they
 * belong), or until the connection closes. The bytes are forwarded as they are, but for a
 * chunked body's trailer section, which is held back and parsed for the caller to filter
 * ({@link BodyFramer.trailers}), or, for a client that does not know chunked framing
 * (HTTP/1.0), as the chunks' data only ({@link BodyFramer.decode}).
 */
import { FramingError } from './framing-error.js';
import { parseTrailerFields, type TrailerFields } from './trailer-fields.js';

export { FramingError };

const MAX_SIZE_DIGITS = 16;
const MAX_LINE = 4096;
/** Most bytes of a trailer section: it counts in no body limit, so it has one of its own. */
const MAX_TRAILERS = 16 * 1024;

const enum S {
  Size,
  /** Whitespace after a chunk size: only more of it or `;` may follow. */
  SizeWs,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  LastLf,
  Done,
}

/** A body's framing state. */
export class BodyFramer {
  /** Decoded body bytes seen so far (for size limits). */
  bytes = 0;
  #remaining: number;
  readonly #chunked: boolean;
  readonly #untilClose: boolean;
  #s = S.Size;
  #digits = 0;
  #line = 0;
  #trailers = 0;
  /**
   * The trailer section, from its first byte on (never for a body without one, so that such
   * a body's framer is as small and as quick to make as before): see {@link HeldSection}.
   */
  #section: HeldSection | null = null;

  /**
   * Whether the body has a trailer section (known from its first byte on). From that byte to
   * the body's end, {@link BodyFramer.feed} holds the bytes back: it returns where they start,
   * and {@link BodyFramer.end} says where the body's bytes end.
   */
  get trailing(): boolean {
    return this.#section !== null;
  }

  /**
   * With {@link BodyFramer.trailing}: the index just after the body's end in the buffer last
   * fed, or that buffer's length while the body goes on.
   */
  get end(): number {
    return this.#section?.end ?? 0;
  }

  /**
   * The trailer section's fields, once a body that has one is complete ({@link
   * BodyFramer.done}); else null. The caller sends on those it keeps (and the final CRLF) in
   * place of the section.
   */
  get trailers(): TrailerFields | null {
    return this.#section?.fields ?? null;
  }

  /**
   * @param kind - `length` with `length` bytes, `chunked`, or `close` (everything until the
   * connection ends).
   */
  constructor(kind: 'length' | 'chunked' | 'close', length = 0) {
    this.#chunked = kind === 'chunked';
    this.#untilClose = kind === 'close';
    this.#remaining = kind === 'length' ? length : 0;
    if (kind === 'length' && length === 0) this.#s = S.Done;
  }

  /** Whether the body is complete. */
  get done(): boolean {
    return this.#s === S.Done;
  }

  /** Whether the body ends only when the connection closes. */
  get untilClose(): boolean {
    return this.#untilClose;
  }

  /**
   * Consumes bytes from `buf` starting at `start`; returns the index just after the body's
   * last byte when it ends inside `buf`, else `buf.length`; but the bytes of a trailer section
   * are held back: then it returns where they start in `buf` (or `start`), which is less than
   * `buf.length` (see {@link BodyFramer.trailing}). Throws {@link FramingError}.
   */
  feed(buf: Buffer, start = 0): number {
    if (this.#untilClose) {
      this.bytes += buf.length - start;
      return buf.length;
    }
    if (!this.#chunked) {
      const n = Math.min(this.#remaining, buf.length - start);
      this.#remaining -= n;
      this.bytes += n;
      if (this.#remaining === 0) this.#s = S.Done;
      return start + n;
    }
    return this.#chunk(buf, start, false);
  }

  /**
   * Like {@link BodyFramer.feed} for a chunked body, and moves the chunks' data found in `buf`
   * to its front, in place (no allocation, however small the chunks): the body without its
   * framing, chunk extensions and trailers. Returns how many data bytes are now at the front;
   * the bytes after the body's end, if it ends in `buf`, are left where they are. Throws
   * {@link FramingError}.
   */
  decode(buf: Buffer): number {
    if (!this.#chunked) throw new Error('router bug: decode() on a body that is not chunked');
    return this.#chunk(buf, 0, true);
  }

  /**
   * The chunked state machine. Returns the index after the body's end, or when `compact`, how
   * many data bytes it moved to the front of `buf`.
   */
  #chunk(buf: Buffer, start: number, compact: boolean): number {
    let i = start;
    let w = 0;
    const len = buf.length;
    while (i < len && this.#s !== S.Done) {
      switch (this.#s) {
        case S.Data: {
          const n = Math.min(this.#remaining, len - i);
          this.#remaining -= n;
          this.bytes += n;
          if (compact) {
            if (w !== i) buf.copyWithin(w, i, i + n);
            w += n;
          }
          i += n;
          if (this.#remaining === 0) this.#s = S.DataCr;
          continue;
        }
        case S.Size: {
          const c = buf[i] as number;
          const v = hex(c);
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) throw new FramingError('chunk size too long');
            this.#remaining = this.#remaining * 16 + v;
            if (!Number.isSafeInteger(this.#remaining))
              throw new FramingError('chunk size too large');
          } else if (this.#digits === 0) {
            throw new FramingError('missing chunk size');
          } else if (c === 59 /* ; */) {
            this.#s = S.Ext;
            this.#line = 0;
          } else if (c === 32 || c === 9) {
            this.#s = S.SizeWs;
            this.#line = 0;
          } else if (c === 13) {
            this.#s = S.SizeLf;
          } else throw new FramingError('invalid chunk size');
          i++;
          continue;
        }
        case S.SizeWs: {
          // `3 4` would be a size of 3 here and of 0x34 to a lenient backend: refused.
          const c = buf[i] as number;
          if (c === 59) this.#s = S.Ext;
          else if ((c !== 32 && c !== 9) || ++this.#line > MAX_LINE)
            throw new FramingError('invalid chunk size');
          i++;
          continue;
        }
        case S.Ext: {
          const c = buf[i] as number;
          if (c === 13) this.#s = S.SizeLf;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#line > MAX_LINE)
            throw new FramingError('invalid chunk extension');
          i++;
          continue;
        }
        case S.SizeLf:
          if (buf[i] !== 10) throw new FramingError('expected LF after chunk size');
          i++;
          this.#digits = 0;
          this.#s = this.#remaining === 0 ? S.TrailerStart : S.Data;
          continue;
        case S.DataCr:
          if (buf[i] !== 13) throw new FramingError('expected CRLF after chunk data');
          i++;
          this.#s = S.DataLf;
          continue;
        case S.DataLf:
          if (buf[i] !== 10) throw new FramingError('expected CRLF after chunk data');
          i++;
          this.#s = S.Size;
          continue;
        case S.TrailerStart:
          if (buf[i] === 13) this.#s = S.LastLf;
          else {
            if (this.#section === null && !compact) this.#section = new HeldSection(i);
            this.#s = S.Trailer;
            this.#line = 0;
            continue;
          }
          i++;
          continue;
        case S.Trailer: {
          const c = buf[i] as number;
          // Its CRLF counts too: a flood of one-character lines was a third of what it weighed.
          if (c === 13) {
            this.#s = S.TrailerLf;
            if ((this.#trailers += 2) > MAX_TRAILERS) throw new FramingError('trailers too large');
          } else if ((c < 32 && c !== 9) || c === 127 || ++this.#line > MAX_LINE)
            throw new FramingError('invalid trailer');
          else if (++this.#trailers > MAX_TRAILERS) throw new FramingError('trailers too large');
          i++;
          continue;
        }
        case S.TrailerLf:
          if (buf[i] !== 10) throw new FramingError('expected LF in trailer');
          i++;
          this.#s = S.TrailerStart;
          continue;
        case S.LastLf:
          if (buf[i] !== 10) throw new FramingError('expected LF after last chunk');
          i++;
          this.#s = S.Done;
          continue;
      }
    }
    const section = this.#section;
    if (section === null || compact) return compact ? w : i;
    return section.hold(buf, start, i, this.#s === S.Done);
  }
}

/**
 * A trailer section while it comes: its bytes, copied (the caller may reuse its buffers) into
 * one buffer that doubles as it fills (a section trickled a byte per read is not a Buffer per
 * byte), then its fields.
 */
class HeldSection {
  #bytes = Buffer.allocUnsafe(256);
  #length = 0;
  /** Where the section starts in the buffer being fed, when it starts there; else -1. */
  #from: number;
  /** See {@link BodyFramer.end}. */
  end = 0;
  /** The fields, once the section is complete. */
  fields: TrailerFields | null = null;

  constructor(from: number) {
    this.#from = from;
  }

  /**
   * Keeps the bytes of `buf` up to `i` (from `start`, or from where the section starts), and
   * parses the section when `complete`. Returns where the bytes kept start in `buf`.
   */
  hold(buf: Buffer, start: number, i: number, complete: boolean): number {
    const from = this.#from === -1 ? start : this.#from;
    this.#from = -1;
    this.end = i;
    const length = this.#length + (i - from);
    if (length > this.#bytes.length) {
      // At most MAX_TRAILERS and the final CRLF: the state machine throws before.
      const grown = Buffer.allocUnsafe(Math.max(length, 2 * this.#bytes.length));
      this.#bytes.copy(grown, 0, 0, this.#length);
      this.#bytes = grown;
    }
    buf.copy(this.#bytes, this.#length, from, i);
    this.#length = length;
    if (complete) this.fields = parseTrailerFields(this.#bytes.subarray(0, length));
    return from;
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
