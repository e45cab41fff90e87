// The tag rule lives once (host-tags.ts): the record parser and the host agent's options both
// call it. These check that the parser refuses exactly the values isValidTagValue refuses.
import type { KeyValue } from '@flotilla/store';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '@flotilla/core';
import { decodeRecord } from './decode.js';
import { isValidTagName, isValidTagValue, MAX_TAG_VALUE_LENGTH } from './host-tags.js';
import { ClusterKeys } from './keys.js';

const keys = new ClusterKeys();
const host = {
  id: 'h1',
  addr: '127.0.0.1:7000',
  capacity: { cpu: 1000, memory: 1024 },
  registeredAt: 1_700_000_000_000,
};

/** Whether a host record with `tags` decodes. */
function parses(tags: unknown): boolean {
  try {
    const kv: KeyValue = {
      key: keys.host('h1'),
      value: JSON.stringify({ ...host, tags }),
      createRevision: 1,
      modRevision: 1,
      version: 1,
    };
    decodeRecord(keys, kv);
    return true;
  } catch (err) {
    expect(isFlotillaError(err, 'FLOTILLA_CLUSTER_INVALID_RECORD'), String(err)).toBe(true);
    return false;
  }
}

describe('host tag rules', () => {
  const values: [string, unknown, boolean][] = [
    ['empty', '', true],
    ['256 characters', 'v'.repeat(MAX_TAG_VALUE_LENGTH), true],
    ['257 characters', 'v'.repeat(MAX_TAG_VALUE_LENGTH + 1), false],
    ['128 emoji (256 UTF-16 units)', '\u{1F600}'.repeat(128), true],
    ['a NUL', 'a\0b', false],
    ['a number', 7, false],
    ['null', null, false],
    ['an object', { a: 1 }, false],
  ];

  it.each(values)('a value (%s): isValidTagValue and the record parser agree', (_, v, ok) => {
    expect(isValidTagValue(v)).toBe(ok);
    expect(parses({ zone: v })).toBe(ok);
  });

  it('names: isValidTagName and the record parser agree', () => {
    for (const [name, ok] of [
      ['zone', true],
      ['topology.kubernetes.io/zone', true],
      ['z'.repeat(63), true],
      ['z'.repeat(64), false],
      ['-zone', false],
      ['my zone', false],
    ] as const) {
      expect(isValidTagName(name)).toBe(ok);
      expect(parses({ [name]: 'a' })).toBe(ok);
    }
  });
});
