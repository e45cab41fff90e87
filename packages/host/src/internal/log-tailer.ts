// Follows a job's output file (the job writes it with O_APPEND) into its LogBuffer. Files,
// not pipes, carry a job's output so that the job outlives its driver: a pipe would break
// (EPIPE) when the agent restarts, and the job would die or lose its output.
import { watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { LogBuffer } from '../log-buffer.js';

const CHUNK = 64 * 1024;

/** Options of {@link LogTailer}. */
export interface LogTailerOptions {
  readonly path: string;
  readonly stream: 'stdout' | 'stderr';
  readonly buffer: LogBuffer;
  /**
   * Once the file is read to its end and larger than this, it is truncated (the job appends
   * from 0 again). A line written between the last read and the truncation is lost: the same
   * trade-off as logrotate's `copytruncate`.
   */
  readonly maxFileBytes: number;
  /** Start this many bytes before the end, skipping the partial first line; default 0 (start). */
  readonly backlogBytes?: number;
  /** A safety net for missed inotify events, ms. */
  readonly pollMs: number;
  readonly onError: (err: unknown) => void;
}

/** Copies what a job appends to a file into its log buffer, as it is written. */
export class LogTailer {
  readonly #o: LogTailerOptions;
  #fh: FileHandle | undefined;
  #position = 0;
  #skipToNewline = false;
  #watcher: FSWatcher | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  private constructor(options: LogTailerOptions) {
    this.#o = options;
  }

  /** Opens the file and starts following it. */
  static async start(options: LogTailerOptions): Promise<LogTailer> {
    const t = new LogTailer(options);
    t.#fh = await open(options.path, 'r+');
    const { size } = await t.#fh.stat();
    const backlog = options.backlogBytes ?? Infinity;
    if (size > backlog) {
      t.#position = size - backlog;
      t.#skipToNewline = true;
    }
    t.#watcher = watch(options.path, { persistent: false }, () => t.kick());
    t.#watcher.on('error', options.onError);
    t.#poll = setInterval(() => t.kick(), options.pollMs);
    t.#poll.unref();
    t.kick();
    return t;
  }

  /** Reads whatever was appended since the last read. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#reading !== undefined) {
      this.#again = true;
      return;
    }
    this.#reading = this.#drain()
      .catch((err: unknown) => this.#o.onError(err))
      .finally(() => {
        this.#reading = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Reads to the end of the file one last time, then stops following it. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#watcher?.close();
    clearInterval(this.#poll);
    while (this.#reading !== undefined) await this.#reading;
    this.#stopped = true;
    try {
      await this.#drain();
    } catch (err) {
      this.#o.onError(err);
    }
    await this.#fh?.close();
    this.#fh = undefined;
  }

  async #drain(): Promise<void> {
    const fh = this.#fh;
    if (fh === undefined) return;
    const buf = Buffer.allocUnsafe(CHUNK);
    let read = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, this.#position);
      if (bytesRead === 0) break;
      read += bytesRead;
      this.#position += bytesRead;
      let data = buf.subarray(0, bytesRead);
      if (this.#skipToNewline) {
        const nl = data.indexOf(0x0a);
        if (nl === -1) continue;
        this.#skipToNewline = false;
        data = data.subarray(nl + 1);
      }
      if (!this.#o.buffer.ended) this.#o.buffer.write(this.#o.stream, data);
      // A full chunk: more may be waiting, the job may be writing faster than this reads.
      if (bytesRead === CHUNK) await this.#dropIfBehind(fh);
    }
    // The size matters only to truncate a file past its bound, or to notice that someone else
    // truncated it (then a kick finds nothing to read): no stat for every write of the job.
    if (read > 0 && this.#position <= this.#o.maxFileBytes) return;
    const { size } = await fh.stat();
    if (size < this.#position) {
      this.#position = 0; // truncated by someone else: start over
    } else if (size === this.#position && size > this.#o.maxFileBytes) {
      await fh.truncate(0);
      this.#position = 0;
    }
  }

  /**
   * A job that writes faster than its file is read never lets the reader reach the end, where
   * the file is truncated: past twice the bound, it is truncated anyway and what was not read
   * is dropped, with a `system` line saying how much, so the disk use stays bounded.
   */
  async #dropIfBehind(fh: FileHandle): Promise<void> {
    const { size } = await fh.stat();
    if (size <= 2 * this.#o.maxFileBytes) return;
    await fh.truncate(0);
    const dropped = size - this.#position;
    this.#position = 0;
    if (!this.#o.buffer.ended) {
      this.#o.buffer.append(
        'system',
        `${dropped} bytes of ${this.#o.stream} were dropped unread: the job writes faster than its log is read`,
      );
    }
  }
}
