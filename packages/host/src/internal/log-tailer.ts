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

/**
 * A reader of the same file that must not lose bytes to truncation (a `fromStart` read): the
 * file is truncated only once every hold has read to its end, or past twice the bound, when
 * what a hold had not read is added to its `lost` and its `position` goes back to 0.
 */
export interface FileHold {
  /** The next byte it reads. */
  position: number;
  /** Bytes cut before it read them, not yet reported by it. */
  lost: number;
  /** One more at each truncation: a read begun before one is void. */
  generation: number;
}

/** Copies what a job appends to a file into its log buffer, as it is written. */
export class LogTailer {
  readonly #o: LogTailerOptions;
  readonly #holds = new Set<FileHold>();
  #cut = 0;
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

  /** The bytes truncations have cut from the file so far, read or not. */
  get cutBytes(): number {
    return this.#cut;
  }

  /**
   * Keeps the file from being truncated past `hold`'s position (up to twice its bound), from
   * its start: what was cut before is added to `hold.lost`.
   */
  hold(hold: FileHold): void {
    hold.lost += this.#cut;
    if (!this.#stopped) this.#holds.add(hold);
  }

  /** Ends a {@link hold}. */
  release(hold: FileHold): void {
    this.#holds.delete(hold);
    this.kick(); // the file may be truncated now
  }

  /** Truncates the file; holds not at `size` lose what they had not read. */
  async #truncate(fh: FileHandle, size: number): Promise<void> {
    for (const h of this.#holds) {
      h.lost += Math.max(0, size - h.position);
      h.position = 0;
      h.generation++;
    }
    this.#cut += size;
    await fh.truncate(0);
  }

  /** Reads to the end of the file one last time, then stops following it. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#watcher?.close();
    clearInterval(this.#poll);
    while (this.#reading !== undefined) await this.#reading;
    this.#stopped = true;
    this.#holds.clear();
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
      const held = [...this.#holds].some((h) => h.position < size);
      // a hold that does not read keeps the file up to twice its bound, then loses the rest
      if (held && size <= 2 * this.#o.maxFileBytes) return;
      await this.#truncate(fh, size);
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
    await this.#truncate(fh, size);
    const dropped = size - this.#position;
    this.#position = 0;
    if (!this.#o.buffer.ended)
      this.#o.buffer.append('system', dropMessage(dropped, this.#o.stream));
  }
}

const DROPPED = ' were dropped unread: the job writes faster than its log is read';

function dropMessage(bytes: number, stream: string): string {
  return `${bytes} bytes of ${stream}${DROPPED}`;
}

/** Whether a `system` line is a tailer's own word that it dropped output from the ring. */
export function isDropMessage(line: string): boolean {
  return line.endsWith(DROPPED);
}
