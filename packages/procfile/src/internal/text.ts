import { ProcfileError, ProcfileErrorCodes } from '../errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Turns parser input into text: bytes are decoded as strict UTF-8, and one leading byte-order
 * mark is dropped either way.
 */
export function toText(input: unknown, what: string): string {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else if (input instanceof Uint8Array) {
    try {
      text = decoder.decode(input);
    } catch (cause) {
      throw new ProcfileError(
        ProcfileErrorCodes.ENCODING,
        `${what} is not valid UTF-8: save the file as UTF-8 text`,
        { cause },
      );
    }
  } else {
    throw new ProcfileError(
      ProcfileErrorCodes.INPUT,
      `${what} must be a string or a Uint8Array of UTF-8 bytes, got ${describe(input)}`,
    );
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** Shows a line in a message: quoted, shortened, control characters made visible. */
export function quote(line: string, max = 60): string {
  const shown = line.length > max ? `${line.slice(0, max - 1)}…` : line;
  return JSON.stringify(shown);
}
