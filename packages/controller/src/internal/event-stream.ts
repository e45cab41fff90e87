import type { EventEmitter } from 'eventemitter3';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type {
  ControllerEvent,
  ControllerEvents,
  ControllerEventType,
  EventStreamOptions,
} from '../events.js';
import { AsyncQueue } from './queue.js';

/** Every event type, for subscribing to all. */
export const EVENT_TYPES: readonly ControllerEventType[] = [
  'app.created',
  'app.destroyed',
  'config.changed',
  'build.started',
  'build.output',
  'build.finished',
  'release.created',
  'deploy.started',
  'deploy.progress',
  'deploy.finished',
  'job.state',
  'scale',
  'domain.added',
  'domain.removed',
  'run.started',
  'run.finished',
];

/**
 * The controller's events as an `AsyncIterable`, from now on: filtered by app and types,
 * bounded by `maxBacklog` (a stalled consumer ends with `FLOTILLA_CONTROLLER_EVENT_BACKLOG`),
 * ended by `signal` or by `closed`.
 */
export function eventStream(
  emitter: EventEmitter<ControllerEvents>,
  options: EventStreamOptions,
  closed: AbortSignal,
): AsyncIterable<ControllerEvent> {
  const max = options.maxBacklog ?? 10_000;
  if (!Number.isSafeInteger(max) || max < 1)
    throw new ControllerError(
      ControllerErrorCodes.INVALID_INPUT,
      `maxBacklog must be a whole number above 0, got ${String(max)}`,
      {
        path: 'maxBacklog',
      },
    );
  const types = options.types ?? EVENT_TYPES;
  for (const t of types)
    if (!EVENT_TYPES.includes(t))
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `there is no event type ${JSON.stringify(String(t).slice(0, 40))}`,
        {
          path: 'types',
        },
      );
  const queue = new AsyncQueue<ControllerEvent>(max, (q) =>
    q.end(
      new ControllerError(
        ControllerErrorCodes.EVENT_BACKLOG,
        `the event stream's consumer fell ${max} events behind: the stream ended; read faster or open a new stream`,
      ),
    ),
  );
  const listener = (event: ControllerEvent): void => {
    if (options.app !== undefined && event.app !== options.app) return;
    queue.push(event);
  };
  const stop = (): void => {
    for (const t of types) emitter.off(t, listener as never);
    queue.end();
  };
  for (const t of types) emitter.on(t, listener as never);
  if (options.signal?.aborted === true || closed.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  closed.addEventListener('abort', stop, { once: true });
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* queue;
      } finally {
        options.signal?.removeEventListener('abort', stop);
        closed.removeEventListener('abort', stop);
        stop();
      }
    },
  };
}
