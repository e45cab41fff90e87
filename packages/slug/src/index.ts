/**
 * The Flotilla slug format: a gzipped tar of an app's built tree. `packSlug` writes one
 * atomically and deterministically; `extractSlug` unpacks one and refuses anything that could
 * write outside its directory.
 *
 * @packageDocumentation
 */
export { packSlug } from './pack.js';
export type { PackSlugOptions, PackedSlug } from './pack.js';
export { DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, extractSlug } from './extract.js';
export type { ExtractSlugOptions, ExtractedSlug } from './extract.js';
export { SlugError, SlugErrorCodes } from './errors.js';
export type { SlugErrorCode, SlugErrorDetails } from './errors.js';
