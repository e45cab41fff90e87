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
      `${what} must be a string or a Uint8Array of UTF-8 bytes, got ${describeInput(input)}`,
    );
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function describeInput(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** The most characters of user text (a line, a name, a key) a message quotes. */
export const QUOTE_MAX = 80;

/**
 * Shows user text in a message: JSON-quoted (control characters and NUL made visible), and
 * cut to {@link QUOTE_MAX} characters with an ellipsis, never inside a surrogate pair, so that
 * a 10 MB line makes a short message.
 */
export function quote(text: string, max = QUOTE_MAX): string {
  if (text.length <= max) return JSON.stringify(text);
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${JSON.stringify(text.slice(0, end))}…`;
}
