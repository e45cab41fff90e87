// BodyFramer's bounds on what a chunked body may carry besides its data.
import { describe, expect, it } from 'vitest';
import { BodyFramer } from './body-framer.js';

function feed(body: string): string | undefined {
  try {
    new BodyFramer('chunked').feed(Buffer.from(body, 'latin1'));
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

describe('BodyFramer trailers', () => {
  it('counts every byte of a trailer section against its 16 KiB, line ends included', () => {
    // 6,000 one-character trailer lines: 6,000 bytes of fields, 18,000 bytes on the wire.
    const short = 'a\r\n'.repeat(6000);
    expect(feed(`0\r\n${short}\r\n`)).toBe('trailers too large');
    // Well under the bound on the wire: accepted.
    expect(feed(`0\r\n${'x-t: v\r\n'.repeat(1000)}\r\n`)).toBeUndefined();
  });
});
