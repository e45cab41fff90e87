/** The instance a {@link DrainWait} hook waits on. */
export interface DrainTarget {
  /** Its discovery service (`demo-web`: `serviceName(app, type)`). */
  readonly service: string;
  /** Its instance id: the job id. */
  readonly id: string;
}

/**
 * The `drainWait` hook of a `HostAgent`: resolves once the routers have stopped sending the
 * instance new requests and finished the ones in flight (the reference PaaS plugs in
 * `waitForDrained` of `@flotilla/router`). The agent calls it when a job is being stopped, after
 * the instance was marked not ready and deregistered and before SIGTERM. `signal` aborts when
 * the agent's `drainMs` bound runs out or the agent closes: the stop goes on either way, so a
 * hook that hangs (no router answering) delays a stop by `drainMs` at most.
 *
 * @example
 * ```ts
 * const agent = new HostAgent({ ...options, drainMs: 30_000,
 *   drainWait: (instance, signal) => router.waitForDrained(instance, { signal }) });
 * ```
 */
export type DrainWait = (instance: DrainTarget, signal: AbortSignal) => Promise<void>;
