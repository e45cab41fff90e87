/**
 * Zero-dependency primitives shared by every Flotilla package.
 *
 * @packageDocumentation
 */
export { FlotillaError, isFlotillaError } from './errors.js';
export type { FlotillaErrorOptions } from './errors.js';
