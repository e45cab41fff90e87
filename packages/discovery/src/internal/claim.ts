import type { CallOptions, LeaseId, Store } from '@flotilla/store';
import { DiscoveryError, DiscoveryErrorCodes } from '../errors.js';
import type { ServiceInstance } from '../instance.js';

/**
 * Writes `instance` at `key` under `leaseId` if nobody holds the key: the one way an instance
 * is registered, first or again after a lost lease, so that no registrant overwrites another.
 *
 * @throws {@link DiscoveryError} `FLOTILLA_DISCOVERY_DUPLICATE_ID` when the key is held.
 */
export async function claimInstance(
  store: Store,
  key: string,
  instance: ServiceInstance,
  leaseId: LeaseId,
  options: CallOptions,
): Promise<void> {
  const res = await store.txn(
    {
      compare: [{ key, target: 'version', op: '==', value: 0 }],
      success: [{ op: 'put', key, value: JSON.stringify(instance), lease: leaseId }],
    },
    options,
  );
  if (!res.succeeded) {
    const { service, id } = instance;
    throw new DiscoveryError(
      DiscoveryErrorCodes.DUPLICATE_ID,
      `instance ${id} of ${service} is already registered by a live registrant: use another id, or wait for its TTL if that registrant died`,
      { service, instanceId: id },
    );
  }
}
