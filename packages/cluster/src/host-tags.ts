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

/** The most tags a host record holds, and constraints a process type names. */
export const MAX_TAGS = 64;

/** The longest tag value, in characters. */
export const MAX_TAG_VALUE_LENGTH = 256;

const TAG_NAME = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/**
 * Whether `name` can name a host tag or a constraint: 1 to 63 characters from
 * `A-Z a-z 0-9 . _ / -`, starting with a letter or digit. The record validators and the host
 * agent's options check this one rule.
 */
export function isValidTagName(name: string): boolean {
  return TAG_NAME.test(name);
}

/**
 * Whether `value` can be a host tag's or a constraint's value: a string of at most
 * {@link MAX_TAG_VALUE_LENGTH} characters (UTF-16 code units, as `length` counts) without NUL.
 * The record validators and the host agent's options check this one rule.
 */
export function isValidTagValue(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_TAG_VALUE_LENGTH && !value.includes('\0');
}
