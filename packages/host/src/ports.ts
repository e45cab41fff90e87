import { HostError, HostErrorCodes } from './errors.js';
import { probePort, type PortProbe } from './internal/port-probe.js';

/** An inclusive range of TCP ports for jobs' `PORT`. */
export interface PortRange {
  /** The first port, from 1024. */
  readonly from: number;
  /** The last port, at most 65535. */
  readonly to: number;
}

/** Options of {@link PortAllocator}. */
export interface PortAllocatorOptions {
  /**
   * The address jobs are reached at (the host part of the agent's `address`, `127.0.0.1`,
   * `[::1]`): a port is also bound on it, when it is an IP literal, to check it is free.
   * Without it only the wildcard address is bound, which collides with every local listener.
   */
  readonly host?: string;
}

/**
 * Hands out the ports of a range to jobs, one each, lowest free first; a port comes back when
 * its job ends. Ports of adopted jobs are claimed with {@link PortAllocator.claim}.
 *
 * A port is handed out only if it can be bound at that moment (listen, then close): a port
 * another process listens on (another agent's job, a developer's server) is skipped, so that
 * a job's health check never passes on a stranger's listener and routers never send the job's
 * traffic there. The check cannot hold the port until the job binds it (the job is another
 * process); a process binding it in between makes the job fail with `EADDRINUSE`, a crash the
 * scheduler restarts elsewhere or on another port.
 */
export class PortAllocator {
  /** The ports it hands out. */
  readonly range: PortRange;
  readonly #host: string | undefined;
  readonly #byJob = new Map<string, number>();
  readonly #taken = new Set<number>();
  /**
   * Allocations in flight, by job: a second call for the job waits for the first; a release
   * cancels it (`cancelled`), so that it keeps no port.
   */
  readonly #pending = new Map<string, { promise: Promise<number>; cancelled: boolean }>();

  constructor(range: PortRange, options: PortAllocatorOptions = {}) {
    const ok =
      typeof range === 'object' &&
      range !== null &&
      Number.isSafeInteger(range.from) &&
      Number.isSafeInteger(range.to) &&
      range.from >= 1024 &&
      range.to <= 65535 &&
      range.from <= range.to;
    if (!ok)
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `ports must be { from, to } with 1024 <= from <= to <= 65535, got ${JSON.stringify(range)}`,
        { path: 'ports' },
      );
    if (options.host !== undefined && (typeof options.host !== 'string' || options.host === ''))
      throw new HostError(HostErrorCodes.INVALID_OPTIONS, 'host must be a non-empty string', {
        path: 'host',
      });
    this.range = { from: range.from, to: range.to };
    this.#host = options.host;
  }

  /**
   * The port of a job, allocating the lowest one that no other job holds and nothing listens
   * on. `FLOTILLA_HOST_NO_PORT` when every port of the range is taken (by jobs here or by other
   * processes); `FLOTILLA_HOST_CLOSED` when `signal` aborts first (nothing is kept then).
   */
  allocate(jobId: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const had = this.#byJob.get(jobId);
    if (had !== undefined) return Promise.resolve(had);
    const pending = this.#pending.get(jobId);
    if (pending !== undefined) return pending.promise;
    const entry = { promise: Promise.resolve(0), cancelled: false };
    entry.promise = this.#allocate(jobId, options.signal, entry).finally(() => {
      if (this.#pending.get(jobId) === entry) this.#pending.delete(jobId);
    });
    this.#pending.set(jobId, entry);
    return entry.promise;
  }

  async #allocate(
    jobId: string,
    signal: AbortSignal | undefined,
    entry: { readonly cancelled: boolean },
  ): Promise<number> {
    const aborted = (): HostError =>
      new HostError(
        HostErrorCodes.CLOSED,
        entry.cancelled
          ? `the port allocation of job ${jobId} was cancelled: the job's port was released`
          : 'the port allocation was aborted',
        { jobId, cause: signal?.reason },
      );
    // A function: TypeScript would narrow `signal.aborted` across the awaits below.
    const isAborted = (): boolean => signal?.aborted === true || entry.cancelled;
    let busy = 0;
    for (let port = this.range.from; port <= this.range.to; port++) {
      if (this.#taken.has(port)) continue;
      if (isAborted()) throw aborted();
      // Held while it is probed: a concurrent allocation skips it.
      this.#taken.add(port);
      let probe: PortProbe;
      try {
        probe = await probePort(port, this.#host);
      } catch (err) {
        this.#taken.delete(port);
        throw err;
      }
      if (probe === 'free' && !isAborted()) {
        this.#byJob.set(jobId, port);
        return port;
      }
      this.#taken.delete(port);
      if (isAborted()) throw aborted();
      busy++;
    }
    const size = this.range.to - this.range.from + 1;
    throw new HostError(
      HostErrorCodes.NO_PORT,
      `all ${size} ports from ${this.range.from} to ${this.range.to} are taken (${size - busy} by jobs of this agent, ${busy} by other processes listening on them): widen the range, move it away from other servers' ports, or run fewer jobs here`,
      { jobId },
    );
  }

  /** Records the port an adopted job already listens on. */
  claim(jobId: string, port: number): void {
    this.#taken.add(port);
    this.#byJob.set(jobId, port);
  }

  /**
   * Gives a job's port back. An allocation of the job still in flight is cancelled: it keeps
   * no port and rejects with `FLOTILLA_HOST_CLOSED`.
   */
  release(jobId: string): void {
    const pending = this.#pending.get(jobId);
    if (pending !== undefined) {
      pending.cancelled = true;
      this.#pending.delete(jobId);
    }
    const p = this.#byJob.get(jobId);
    if (p === undefined) return;
    this.#byJob.delete(jobId);
    this.#taken.delete(p);
  }
}
