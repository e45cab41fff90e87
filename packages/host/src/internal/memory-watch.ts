// The memory limit rule of ProcessDriver, apart from /proc and timers: what one sample of a
// job's resident memory means. Modelled on Heroku's R14 (over quota: warned) and R15 (vastly
// over quota: killed).

const MiB = 1024 * 1024;

/** What a sample calls for. */
export type MemoryVerdict =
  { readonly action: 'ok' } | { readonly action: 'warn' | 'kill'; readonly message: string };

/** One job's memory watch: counts consecutive samples over the limit. */
export class MemoryWatch {
  readonly #limitBytes: number;
  readonly #graceSamples: number;
  readonly #hardFactor: number;
  #over = 0;

  /**
   * @param limitMiB - the job's limit.
   * @param graceSamples - consecutive samples over the limit before the job is killed.
   * @param hardFactor - over this multiple of the limit, killed at the first sample.
   */
  constructor(limitMiB: number, graceSamples: number, hardFactor: number) {
    this.#limitBytes = limitMiB * MiB;
    this.#graceSamples = graceSamples;
    this.#hardFactor = hardFactor;
  }

  /** Judges one sample of the job's resident memory, in bytes. */
  sample(rssBytes: number): MemoryVerdict {
    const used = `${(rssBytes / MiB).toFixed(1)} MiB of its ${this.#limitBytes / MiB} MiB limit`;
    if (rssBytes <= this.#limitBytes) {
      this.#over = 0;
      return { action: 'ok' };
    }
    this.#over++;
    if (rssBytes > this.#limitBytes * this.#hardFactor) {
      return {
        action: 'kill',
        message: `Error R15 (Memory quota vastly exceeded): ${used}; killing the job`,
      };
    }
    if (this.#over >= this.#graceSamples) {
      return {
        action: 'kill',
        message: `Error R15 (Memory quota exceeded for ${this.#over} samples in a row): ${used}; killing the job`,
      };
    }
    return { action: 'warn', message: `Error R14 (Memory quota exceeded): ${used}` };
  }
}
