/**
 * Zero-dependency primitives shared by every Flotilla package: the error type, the clock and
 * the logger interface.
 *
 * @packageDocumentation
 */
export { FlotillaError, isFlotillaError } from './errors.js';
export type { FlotillaErrorOptions } from './errors.js';
export { ManualClock, sleep, systemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { isRetryable, retry } from './retry.js';
export type { RetryOptions } from './retry.js';
export { silentLogger } from './logger.js';
export type { LogFn, Logger } from './logger.js';
