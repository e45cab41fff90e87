import type {
  Driver,
  DriverStats,
  ExitStatus,
  JobInfo,
  JobSpec,
  LogLine,
  StopOptions,
} from '@flotilla/host';
import type { LogReadOptions } from '@flotilla/host';

/** How many lines of a removed job are kept. */
export const RETAINED_LINES = 100;

/**
 * A `Driver` that keeps the last lines of each job it removes (the agent removes a job, logs
 * and all, as soon as it reported it crashed), so that a failed deploy can still say what its
 * jobs printed and `flotilla logs` still shows a crashed dyno's last words. At most `maxJobs`
 * jobs are kept, oldest dropped first. Everything else is the inner driver's.
 */
export class LogRetainingDriver implements Driver, Partial<DriverStats> {
  readonly name: string;
  readonly runsImages?: boolean;
  readonly stats?: DriverStats['stats'];
  readonly #inner: Driver;
  readonly #maxJobs: number;
  readonly #retained = new Map<string, LogLine[]>();

  constructor(inner: Driver, maxJobs = 200) {
    this.#inner = inner;
    this.#maxJobs = maxJobs;
    this.name = inner.name;
    if (inner.runsImages !== undefined) this.runsImages = inner.runsImages;
    const stats = (inner as Partial<DriverStats>).stats;
    if (typeof stats === 'function') this.stats = stats.bind(inner);
  }

  async remove(id: string): Promise<void> {
    const lines: LogLine[] = [];
    try {
      for await (const l of this.#inner.logs(id, { tail: RETAINED_LINES })) lines.push(l);
    } catch {
      // nothing to keep
    }
    await this.#inner.remove(id);
    if (lines.length > 0) {
      this.#retained.set(id, lines);
      for (const old of this.#retained.keys()) {
        if (this.#retained.size <= this.#maxJobs) break;
        this.#retained.delete(old);
      }
    }
  }

  start(spec: JobSpec): Promise<JobInfo> {
    return this.#inner.start(spec);
  }
  stop(id: string, options?: StopOptions): Promise<ExitStatus> {
    return this.#inner.stop(id, options);
  }
  signal(id: string, signal: NodeJS.Signals): Promise<void> {
    return this.#inner.signal(id, signal);
  }
  inspect(id: string): Promise<JobInfo> {
    return this.#inner.inspect(id);
  }
  wait(id: string, options?: { signal?: AbortSignal }): Promise<ExitStatus> {
    return this.#inner.wait(id, options);
  }
  /** The job's lines; for a job removed recently, the last lines it had (nothing to follow). */
  logs(id: string, options?: LogReadOptions): AsyncIterable<LogLine> {
    const kept = this.#retained.get(id);
    if (kept === undefined) return this.#inner.logs(id, options);
    const tail = options?.tail;
    return (async function* () {
      yield* tail === undefined ? kept : tail === 0 ? [] : kept.slice(-tail);
    })();
  }
  list(): Promise<JobInfo[]> {
    return this.#inner.list();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.#inner.close();
  }
}
