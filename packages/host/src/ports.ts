import { HostError, HostErrorCodes } from './errors.js';

/** An inclusive range of TCP ports for jobs' `PORT`. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/**
 * Hands out the ports of a range to jobs, one each, lowest free first; a port comes back when
 * its job ends. Ports of adopted jobs are claimed with {@link claim}.
 */
export class PortAllocator {
  readonly range: PortRange;
  readonly #byJob = new Map<string, number>();
  readonly #taken = new Set<number>();

  constructor(range: PortRange) {
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
    this.range = { from: range.from, to: range.to };
  }

  /** The port of a job, allocating one if it has none. `FLOTILLA_HOST_NO_PORT` when all are taken. */
  allocate(jobId: string): number {
    const had = this.#byJob.get(jobId);
    if (had !== undefined) return had;
    for (let p = this.range.from; p <= this.range.to; p++) {
      if (this.#taken.has(p)) continue;
      this.#taken.add(p);
      this.#byJob.set(jobId, p);
      return p;
    }
    throw new HostError(
      HostErrorCodes.NO_PORT,
      `all ${this.range.to - this.range.from + 1} ports from ${this.range.from} to ${this.range.to} are taken: widen the range or run fewer jobs here`,
      { jobId },
    );
  }

  /** Records the port an adopted job already listens on. */
  claim(jobId: string, port: number): void {
    this.#taken.add(port);
    this.#byJob.set(jobId, port);
  }

  /** Gives a job's port back. */
  release(jobId: string): void {
    const p = this.#byJob.get(jobId);
    if (p === undefined) return;
    this.#byJob.delete(jobId);
    this.#taken.delete(p);
  }
}
