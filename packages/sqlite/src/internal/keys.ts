/** Keys are stored as the BLOB of their UTF-8 bytes, so that SQLite orders them as etcd does. */

const EMPTY = Buffer.alloc(0);
// No UTF-8 string holds the byte 0xFF, so every key sorts before it.
const END = Buffer.from([0xff]);

/** The UTF-8 bytes of a key. */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8');
}

/** A key read back from its bytes. */
export function keyString(bytes: Buffer): string {
  return bytes.toString('utf8');
}

/**
 * The index range `[low, high)` of the keys that start with `prefix`: `high` is the prefix with
 * its last byte incremented. That byte is ASCII or a continuation byte (at most 0xBF), so it
 * never overflows.
 */
export function prefixRange(prefix: string): readonly [low: Buffer, high: Buffer] {
  if (prefix === '') return [EMPTY, END];
  const low = keyBytes(prefix);
  const high = Buffer.from(low);
  high[high.length - 1] = (high[high.length - 1] as number) + 1;
  return [low, high];
}
