import { IMAGE_HOST_TAG, RESERVED_TAG_PREFIX } from '@flotilla/cluster';
import type { Driver } from './driver.js';

// The tags themselves are @flotilla/cluster's (the scheduler and the controller read them
// too); re-exported here beside driverTags, where host agent users look for them.
export { IMAGE_HOST_TAG, RESERVED_TAG_PREFIX };

/**
 * The tags a host whose agent runs `driver` advertises: `{ 'flotilla.artifact.image': 'true' }`
 * for a driver that runs images, else none.
 *
 * @example
 * ```ts
 * driverTags(dockerDriver); // { 'flotilla.artifact.image': 'true' }
 * driverTags(processDriver); // {}
 * ```
 */
export function driverTags(driver: Pick<Driver, 'runsImages'>): Record<string, string> {
  return driver.runsImages === true ? { [IMAGE_HOST_TAG]: 'true' } : {};
}
