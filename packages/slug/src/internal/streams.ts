import { SlugError, SlugErrorCodes } from '../errors.js';

/** The part of a stream (Node or streamx) that {@link waitDrain} listens to. */
interface Drainable {
  readonly destroyed: boolean;
  once(event: 'drain' | 'close' | 'error', listener: (err?: unknown) => void): unknown;
  off(event: 'drain' | 'close' | 'error', listener: (err?: unknown) => void): unknown;
}

/**
 * Waits until `stream` asks for more data. Rejects when it closes or fails first, or when
 * `signal` aborts, so that a writer never hangs on a stream that was torn down.
 */
export function waitDrain(stream: Drainable, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    if (stream.destroyed) {
      reject(new Error('stream closed'));
      return;
    }
    const done = (err?: unknown): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err as Error);
    };
    const onDrain = (): void => done();
    const onClose = (err?: unknown): void => done(err ?? new Error('stream closed'));
    const onAbort = (): void => done(signal.reason);
    stream.once('drain', onDrain);
    stream.once('close', onClose);
    stream.once('error', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * An abort controller of our own that also aborts, with the same reason, when the caller's
 * signal does. Call `dispose()` when done, to drop the listener on the caller's signal.
 */
export function linkedController(signal: AbortSignal | undefined): {
  controller: AbortController;
  dispose: () => void;
} {
  const controller = new AbortController();
  if (signal === undefined) return { controller, dispose: () => undefined };
  const onAbort = (): void => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** Throws a {@link SlugError} with code `INVALID_ARGUMENT` unless `value` is a non-empty string. */
export function checkPath(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value === '' || value.includes('\0')) {
    throw new SlugError(
      SlugErrorCodes.INVALID_ARGUMENT,
      `${what} must be a non-empty path without NUL bytes; got ${typeof value === 'string' ? JSON.stringify(value) : typeof value}`,
    );
  }
}

/** Throws a {@link SlugError} with code `INVALID_ARGUMENT` unless `signal` is absent or an `AbortSignal`. */
export function checkSignal(signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new SlugError(SlugErrorCodes.INVALID_ARGUMENT, 'options.signal must be an AbortSignal');
  }
}
