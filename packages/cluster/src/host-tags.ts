/**
 * Host tags starting with this are set by host agents themselves, from what their driver can
 * do ({@link IMAGE_HOST_TAG}); an operator's tags may not use it, so no tag claims what a
 * driver cannot do. The scheduler's unplaced report says to start such a host, not to tag one.
 */
export const RESERVED_TAG_PREFIX = 'flotilla.';

/**
 * The host tag (value `'true'`) a host agent sets when its driver runs container images: what
 * the controller constrains the process types of an image release to
 * (`constraints: { 'flotilla.artifact.image': 'true' }`). Slugs run on every driver and get no
 * tag.
 */
export const IMAGE_HOST_TAG = `${RESERVED_TAG_PREFIX}artifact.image`;
