import type { Clock } from '@flotilla/core';
import type { EndedJob } from '../ended-job.js';
import type { LogLine, LogReadOptions } from '../log-buffer.js';
import { intOption } from './validate.js';

interface Kept {
  readonly job: EndedJob;
  readonly lines: readonly LogLine[];
  /** When it was kept, by the agent's clock: the retention window runs from there. */
  readonly at: number;
}

/** Bounds of {@link EndedJobs}. */
export interface EndedJobsLimits {
  readonly maxJobs: number;
  readonly maxLines: number;
  readonly maxBytes: number;
  readonly retainMs: number;
}

/**
 * The last jobs an agent ended, with their exit status and last log lines: at most `maxJobs`
 * (oldest dropped first), each for `retainMs`, each with at most `maxLines` lines and
 * `maxBytes` bytes of text (the newest kept). Memory is bounded by `maxJobs * maxBytes` plus
 * a per-line overhead.
 */
export class EndedJobs {
  readonly #limits: EndedJobsLimits;
  readonly #clock: Clock;
  readonly #kept = new Map<string, Kept>();

  constructor(limits: EndedJobsLimits, clock: Clock) {
    this.#limits = limits;
    this.#clock = clock;
  }

  /** How many lines to ask the driver for. */
  get maxLines(): number {
    return this.#limits.maxLines;
  }

  /** Keeps a job that ended, replacing an earlier entry of the same id. */
  add(job: Omit<EndedJob, 'lines'>, lines: readonly LogLine[]): void {
    if (this.#limits.maxJobs === 0) return;
    const kept = newest(lines, this.#limits.maxLines, this.#limits.maxBytes);
    this.#kept.delete(job.id);
    this.#kept.set(job.id, {
      job: { ...job, lines: kept.length },
      lines: kept,
      at: this.#clock.now(),
    });
    this.#prune();
  }

  /** The kept entry of a job, if it ended recently enough. */
  get(id: string): { job: EndedJob; lines: readonly LogLine[] } | undefined {
    this.#prune();
    return this.#kept.get(id);
  }

  /** Forgets a job (it runs again). */
  delete(id: string): void {
    this.#kept.delete(id);
  }

  #prune(): void {
    const oldest = this.#clock.now() - this.#limits.retainMs;
    for (const [id, k] of this.#kept) {
      if (this.#kept.size <= this.#limits.maxJobs && k.at >= oldest) break;
      this.#kept.delete(id);
    }
  }
}

/** The newest lines within `maxLines` and `maxBytes` of text (UTF-8). */
function newest(lines: readonly LogLine[], maxLines: number, maxBytes: number): LogLine[] {
  const out: LogLine[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0 && out.length < maxLines; i--) {
    const l = lines[i] as LogLine;
    bytes += Buffer.byteLength(l.line);
    if (bytes > maxBytes) break;
    out.push(l);
  }
  return out.reverse();
}

/** Replays kept lines as `Driver.logs` would for an exited job (a follow ends after them). */
export async function* replay(
  lines: readonly LogLine[],
  options: LogReadOptions,
): AsyncGenerator<LogLine, void, undefined> {
  const tail = options.tail === undefined ? undefined : intOption(options.tail, 'tail', 0, 0);
  const from = tail === undefined ? 0 : Math.max(0, lines.length - tail);
  for (let i = from; i < lines.length; i++) {
    if (options.signal?.aborted === true) return;
    yield lines[i] as LogLine;
  }
}
