// Reading the records discovery stores, checked as strictly as they are written.
import type { KeyValue } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from '../errors.js';
import type { LeaderInfo } from '../election.js';
import type { ServiceInstance } from '../instance.js';
import {
  validateAddr,
  validateId,
  validateMeta,
  validateReady,
  validateService,
} from './validate.js';

/**
 * Reads the instance stored at `services/<service>/<id>` (under `servicesPrefix`), checking it
 * as `register()` checks its input, and that its id and service are the ones its key names.
 *
 * @throws {@link DiscoveryError} `FLOTILLA_DISCOVERY_INVALID_RECORD` when it is not a valid
 * instance; the check that failed is its `cause` when there is one.
 */
export function parseInstance(kv: KeyValue, servicesPrefix: string): ServiceInstance {
  const { service, id } = keyParts(kv.key, servicesPrefix);
  const invalid = (why: string, cause?: unknown): DiscoveryError =>
    invalidRecord(kv.key, why, cause);
  const v = parseObject(kv.value, invalid);
  if (v.id !== id) throw invalid(`its id ${JSON.stringify(v.id)} is not the one its key names`);
  if (v.service !== service) {
    throw invalid(`its service ${JSON.stringify(v.service)} is not the one its key names`);
  }
  const { addr, meta, ready, registeredAt } = v;
  if (typeof registeredAt !== 'string') throw invalid('registeredAt is not a string');
  try {
    validateAddr(addr);
    validateMeta(meta);
    validateReady(ready);
  } catch (err) {
    throw invalid((err as Error).message, err);
  }
  return { id, service, addr, meta, ready, registeredAt };
}

/**
 * The service and instance id a key under `servicesPrefix` names.
 *
 * @throws {@link DiscoveryError} `FLOTILLA_DISCOVERY_INVALID_RECORD` when it names no valid
 * service and id (`services/web`, `services/web/a/b`, `services/Web/a`).
 */
export function keyParts(key: string, servicesPrefix: string): { service: string; id: string } {
  const rest = key.slice(servicesPrefix.length);
  const slash = rest.indexOf('/');
  if (slash < 0) throw invalidRecord(key, 'its key names a service but no instance id');
  const service = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  try {
    validateService(service);
    validateId(id);
  } catch (err) {
    throw invalidRecord(
      key,
      `its key does not name a valid service and id: ${(err as Error).message}`,
      err,
    );
  }
  return { service, id };
}

/**
 * Reads the leader stored at an election's key.
 *
 * @throws {@link DiscoveryError} `FLOTILLA_DISCOVERY_INVALID_RECORD` when it is not a valid
 * leader record.
 */
export function parseLeader(key: string, value: string): LeaderInfo {
  const invalid = (why: string, cause?: unknown): DiscoveryError =>
    invalidRecord(key, why, cause, 'leader entry');
  const { id, meta, since } = parseObject(value, invalid);
  if (typeof since !== 'string') throw invalid('since is not a string');
  try {
    validateId(id, 'candidate id');
    validateMeta(meta);
  } catch (err) {
    throw invalid((err as Error).message, err);
  }
  return { id, meta, since };
}

/** A stored value as a JSON object, or `invalid`'s error. */
function parseObject(
  value: string,
  invalid: (why: string, cause?: unknown) => DiscoveryError,
): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw invalid('its value is not JSON', err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid('its value is not a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function invalidRecord(
  key: string,
  why: string,
  cause?: unknown,
  what: 'instance entry' | 'leader entry' = 'instance entry',
): DiscoveryError {
  return new DiscoveryError(
    DiscoveryErrorCodes.INVALID_RECORD,
    `${what} ${JSON.stringify(key)} is invalid: ${why}. Discovery skips it: delete or rewrite it, and find what wrote it`,
    { key, cause },
  );
}
