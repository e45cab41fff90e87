import type { Driver } from './driver.js';

/**
 * The host tag a `HostAgent` adds to its host record, with the value `'true'`, when its
 * driver runs container images ({@link Driver.runsImages}): what the controller constrains the
 * process types of an image release to (`constraints: { 'flotilla.artifact.image': 'true' }`),
 * so that the scheduler places them only on hosts that can run them. Slugs run on every driver
 * and get no tag.
 */
export const IMAGE_HOST_TAG = 'flotilla.artifact.image';

/**
 * Host tags starting with this are the agent's own, derived from its driver
 * ({@link IMAGE_HOST_TAG}): `HostAgentOptions.tags` may not use it
 * (`FLOTILLA_HOST_INVALID_OPTIONS`), so an operator's tag never claims what the driver cannot do.
 */
export const RESERVED_TAG_PREFIX = 'flotilla.';

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
