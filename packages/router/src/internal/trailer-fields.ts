/**
 * The trailer section of a chunked body, parsed once the body is complete. It is read only on
 * that rare path: a body without trailers never gets here.
 */
import { FramingError } from './framing-error.js';
import { TCHAR } from './http-head.js';

/** A trailer section's field lines. */
export interface TrailerFields {
  /** The section as latin1 (one character per byte): its field lines, then the final CRLF. */
  readonly text: string;
  /** Lower-cased names, one per field line. */
  readonly names: readonly string[];
  /**
   * Where each field line starts in `text`, then where the final CRLF starts: field `i` is
   * `text` from `lineStarts[i]` to `lineStarts[i + 1]`, its CRLF included.
   */
  readonly lineStarts: readonly number[];
}

/**
 * Parses a trailer section (`section`: its field lines and the final CRLF, as the body framer
 * has checked them: lines end in CRLF, no control bytes but HTAB). Each line must be a token,
 * a colon, then the value, as in a head: no whitespace before the colon and no obs-fold (a
 * line that starts with whitespace), which a next hop could read as part of another field.
 * Throws {@link FramingError} (`invalid trailer ...`).
 */
export function parseTrailerFields(section: Buffer): TrailerFields {
  const text = section.toString('latin1');
  const names: string[] = [];
  const lineStarts: number[] = [];
  const last = section.length - 2;
  let i = 0;
  while (i < last) {
    lineStarts.push(i);
    const start = i;
    while (TCHAR[section[i] as number] === 1) i++;
    if (i === start)
      throw new FramingError(
        section[i] === 32 || section[i] === 9
          ? 'invalid trailer (obsolete line folding or whitespace before a field)'
          : 'invalid trailer field name',
      );
    if (section[i] !== 58)
      throw new FramingError(
        section[i] === 32 || section[i] === 9
          ? 'invalid trailer (whitespace before the colon)'
          : 'invalid trailer field name',
      );
    names.push(text.slice(start, i).toLowerCase());
    i = text.indexOf('\r\n', i) + 2;
  }
  lineStarts.push(last);
  return { text, names, lineStarts };
}

/** The field lines of `t` that `keep` accepts (by lower-case name), then the final CRLF. */
export function keptTrailerLines(t: TrailerFields, keep: (name: string) => boolean): string {
  let out = '';
  for (let j = 0; j < t.names.length; j++)
    if (keep(t.names[j] as string))
      out += t.text.slice(t.lineStarts[j] as number, t.lineStarts[j + 1] as number);
  return `${out}\r\n`;
}
