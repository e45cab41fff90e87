/**
 * Key order and size: UTF-8 byte order, as etcd and SQLite's BINARY collation sort keys.
 */

/** UTF-8 length of a string, without allocating for ASCII. */
export function byteLength(s: string): number {
  // Buffer.byteLength is fast but Node-only; count by hand to stay portable.
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Orders keys as etcd does: by their UTF-8 bytes, which is Unicode code point order.
 * (JavaScript's `<` compares UTF-16 code units, which puts U+10000.. before U+E000..U+FFFF.)
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
    if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    return x - y;
  }
  return a.length - b.length;
}
