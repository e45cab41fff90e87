import { StoreError, StoreErrorCodes } from './errors.js';
import type { CallOptions, KeyValue, PutOptions, PutResult, Store } from './store.js';

/** A key's JSON value with its version metadata. */
export interface JsonEntry<T> {
  readonly value: T;
  readonly kv: KeyValue;
}

/**
 * Reads a key and parses its value as JSON; `undefined` when the key is absent.
 *
 * @throws {@link StoreError} `FLOTILLA_STORE_INVALID_VALUE` when the stored value is not JSON.
 *
 * @example
 * ```ts
 * const app = await getJson<{ name: string }>(store, 'apps/demo');
 * app?.value.name; // 'demo'
 * app?.kv.modRevision; // for a later compare-and-set
 * ```
 */
export async function getJson<T = unknown>(
  store: Pick<Store, 'get'>,
  key: string,
  options?: CallOptions,
): Promise<JsonEntry<T> | undefined> {
  const kv = await store.get(key, options);
  if (kv === undefined) return undefined;
  return { value: parseJson<T>(kv), kv };
}

/** Serialises `value` as JSON and puts it. */
export function putJson(
  store: Pick<Store, 'put'>,
  key: string,
  value: unknown,
  options?: PutOptions,
): Promise<PutResult> {
  return store.put(key, toJson(key, value), options);
}

/** Parses a key's value as JSON, with a coded error that names the key when it is not JSON. */
export function parseJson<T = unknown>(kv: Pick<KeyValue, 'key' | 'value'>): T {
  try {
    return JSON.parse(kv.value) as T;
  } catch (cause) {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value of ${JSON.stringify(kv.key)} is not valid JSON: it was not written by putJson/toJson`,
      { key: kv.key, cause },
    );
  }
}

/** Serialises a value as JSON for a key, with a coded error for values JSON cannot hold. */
export function toJson(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value for ${JSON.stringify(key)} cannot be serialised as JSON`,
      {
        key,
        cause,
      },
    );
  }
  if (text === undefined) {
    throw new StoreError(
      StoreErrorCodes.INVALID_VALUE,
      `value for ${JSON.stringify(key)} has no JSON form (${typeof value})`,
      { key },
    );
  }
  return text;
}
