import { compareKeys } from './keys.js';
import type { Compare, KeyValue } from './store.js';

/** Evaluates one compare against a key's current entry (`undefined` when absent). */
export function evaluateCompare(kv: KeyValue | undefined, c: Compare): boolean {
  let actual: number | string;
  switch (c.target) {
    case 'version':
      actual = kv?.version ?? 0;
      break;
    case 'createRevision':
      actual = kv?.createRevision ?? 0;
      break;
    case 'modRevision':
      actual = kv?.modRevision ?? 0;
      break;
    case 'lease':
      actual = kv?.lease ?? '0';
      break;
    case 'value':
      if (kv === undefined) return false;
      actual = kv.value;
      break;
  }
  const expected = c.value;
  if (c.target === 'lease') {
    return c.op === '==' ? actual === expected : actual !== expected;
  }
  const cmp =
    typeof actual === 'string'
      ? compareKeys(actual, expected as string)
      : actual - (expected as number);
  switch (c.op) {
    case '==':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '>':
      return cmp > 0;
  }
}
