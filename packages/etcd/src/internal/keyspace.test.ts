import { describe, expect, it } from 'vitest';
import { KeySpace, leaseForCompare, leaseForPut, prefixEnd } from './keyspace.js';

const text = (b: Buffer): string => b.toString('latin1');

describe('KeySpace', () => {
  it('puts store keys under the prefix and takes it off again', () => {
    const keys = new KeySpace('/p/');
    expect(text(keys.key('a/b'))).toBe('/p/a/b');
    expect(keys.storeKey(keys.key('日本/😀'))).toBe('日本/😀');
  });

  it('ranges over a prefix, or the whole store for an empty one', () => {
    const keys = new KeySpace('/p/');
    expect(keys.range('a/')).toEqual({
      key: Buffer.from('/p/a/'),
      range_end: Buffer.from('/p/a0'),
    });
    expect(keys.range('')).toEqual({ key: Buffer.from('/p/'), range_end: Buffer.from('/p0') });
    // No prefix at all: etcd's "\0" to "\0" is every key.
    expect(new KeySpace('').range('')).toEqual({
      key: Buffer.from([0]),
      range_end: Buffer.from([0]),
    });
  });

  it('starts a page strictly after the given key, never before the prefix', () => {
    const keys = new KeySpace('/p/');
    expect(text(keys.rangeAfter('k/', 'k/2').key)).toBe('/p/k/2\u0000');
    expect(keys.rangeAfter('k/', 'a').key).toEqual(Buffer.from('/p/k/'));
    expect(keys.rangeAfter('k/', undefined)).toEqual(keys.range('k/'));
  });

  it('computes etcd prefix range ends', () => {
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
  });

  it('maps lease ids that etcd cannot hold to one no lease has', () => {
    expect(leaseForPut(undefined)).toBe('0');
    expect(leaseForPut('7587883419574525955')).toBe('7587883419574525955');
    for (const bad of ['0', '007', 'abc', '-5', '9223372036854775808', '']) {
      expect(leaseForPut(bad)).toBe('-1');
    }
    expect(leaseForCompare('0')).toBe('0');
    expect(leaseForCompare('abc')).toBe('-1');
  });
});
