import { systemClock, type Clock } from '@flotilla/core';
import { HostError, HostErrorCodes } from './errors.js';
import { intOption } from './internal/validate.js';

/**
 * Where a log line came from: the job's standard output or error, or `system` for the
 * driver's own messages about the job (why it was stopped, an R14/R15 memory message), as
 * Heroku tells `app[web.1]` lines from `heroku[web.1]` lines.
 */
export type LogStream = 'stdout' | 'stderr' | 'system';

/** One line of a job's output. */
export interface LogLine {
  /** The line's position in the job's log, from 0, one more for each line; never reused. */
  readonly seq: number;
  /** When the line was completed (its newline arrived), ms since the epoch. */
  readonly time: number;
  readonly stream: LogStream;
  readonly jobId: string;
  /**
   * The text, without its newline (nor a `\r` before it). Bytes that are not valid UTF-8 are
   * replaced with U+FFFD.
   */
  readonly line: string;
  /**
   * Set when the line was longer than the buffer's `maxLineBytes`: this entry holds the first
   * part and the line goes on in the next entry of the same stream (the last part has no flag).
   */
  readonly partial?: true;
  /**
   * Set on a line delivered to a reader that fell behind: how many lines were dropped from the
   * buffer, unread by it, just before this one.
   */
  readonly missed?: number;
}

/** Options of {@link LogBuffer}. */
export interface LogBufferOptions {
  /** The most lines kept; older ones are dropped first. Default 1500 (Heroku's `logs -n` max). */
  readonly maxLines?: number;
  /** The most bytes of text kept (UTF-8, plus 64 per line). Default 1 MiB. */
  readonly maxBytes?: number;
  /** Longer lines are split into entries of at most this many bytes. Default 16 KiB. */
  readonly maxLineBytes?: number;
  /** The clock that stamps lines. Default `systemClock`. */
  readonly clock?: Clock;
}

/** Options of {@link LogBuffer.read} (and of `Driver.logs`). */
export interface LogReadOptions {
  /** Start with at most this many of the newest lines; default all that are kept. */
  readonly tail?: number;
  /**
   * Keep waiting for new lines after the kept ones, until the job's log ends (it exited and its
   * output was drained) or `signal` aborts. Default false: end after the kept lines.
   */
  readonly follow?: boolean;
  /**
   * Read the job's output from its first byte, as far as the driver still has it (its output
   * files, dockerd's log), not only the lines its ring keeps: each line once, in order per
   * stream, then with `follow` what comes. The read is paced by its consumer (a slow reader
   * slows it; the driver buffers no more than a chunk for it). Output the driver no longer has
   * (a file cut at its size cap before this reader got to it) is told by one `system` line
   * saying how many bytes were lost. `seq` then counts the lines of this read. Not with `tail`
   * (`FLOTILLA_HOST_INVALID_OPTIONS`). On a bare {@link LogBuffer}, the same as the default: it
   * has only its kept lines.
   */
  readonly fromStart?: boolean;
  /** Ends the iteration, quietly, when aborted. */
  readonly signal?: AbortSignal;
}

/** Default {@link LogBufferOptions.maxLines}. */
export const DEFAULT_LOG_MAX_LINES = 1500;
/** Default {@link LogBufferOptions.maxBytes}. */
export const DEFAULT_LOG_MAX_BYTES = 1024 * 1024;
/** Default {@link LogBufferOptions.maxLineBytes}. */
export const DEFAULT_LOG_MAX_LINE_BYTES = 16 * 1024;

const LINE_OVERHEAD = 64;
const NEWLINE = 0x0a;
const CR = 0x0d;

interface Pending {
  parts: Buffer[];
  length: number;
}

/**
 * A job's output as a ring of lines, bounded by a line count and a byte count. Raw output is
 * written in chunks of any size per stream; lines are completed at each newline, split when
 * longer than `maxLineBytes`, and held while partial until their newline or {@link flush}.
 * Readers take a tail, or follow as an `AsyncIterable`; a reader that falls behind holds no
 * lines (only its position), so it never makes memory grow: it skips ahead to the oldest kept
 * line and is told how many it missed ({@link LogLine.missed}).
 *
 * @example
 * ```ts
 * const logs = new LogBuffer('web.1');
 * logs.write('stdout', 'listening on 5000\n');
 * for await (const l of logs.read({ tail: 10, follow: true, signal })) console.log(l.line);
 * ```
 */
export class LogBuffer {
  /** The job whose lines these are. */
  readonly jobId: string;
  readonly #maxLines: number;
  readonly #maxBytes: number;
  readonly #maxLineBytes: number;
  readonly #clock: Clock;
  readonly #ring: (LogLine | undefined)[];
  /** The bytes each kept line counts for, by ring slot: not measured again when it is dropped. */
  readonly #sizes: number[];
  readonly #decoder = new TextDecoder('utf-8', { fatal: false });
  readonly #pending: Record<'stdout' | 'stderr', Pending> = {
    stdout: { parts: [], length: 0 },
    stderr: { parts: [], length: 0 },
  };
  #first = 0;
  #next = 0;
  #bytes = 0;
  #ended = false;
  #wake: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(jobId: string, options: LogBufferOptions = {}) {
    this.jobId = jobId;
    this.#maxLines = intOption(options.maxLines, 'maxLines', DEFAULT_LOG_MAX_LINES, 1, 1e7);
    this.#maxBytes = intOption(options.maxBytes, 'maxBytes', DEFAULT_LOG_MAX_BYTES, 1024);
    this.#maxLineBytes = intOption(
      options.maxLineBytes,
      'maxLineBytes',
      Math.min(DEFAULT_LOG_MAX_LINE_BYTES, this.#maxBytes - LINE_OVERHEAD),
      4,
      this.#maxBytes - LINE_OVERHEAD,
    );
    this.#clock = options.clock ?? systemClock;
    this.#ring = new Array<LogLine | undefined>(this.#maxLines);
    this.#sizes = new Array<number>(this.#maxLines);
  }

  /** How many lines are kept now. */
  get size(): number {
    return this.#next - this.#first;
  }

  /** The bytes the kept lines count for (UTF-8 text plus 64 per line). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The `seq` the next line will get: how many lines were ever added. */
  get nextSeq(): number {
    return this.#next;
  }

  /** Whether {@link end} was called: no line will be added, followers end after the last. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Adds raw output of a stream. Lines are completed at each `\n`; the rest is held until the
   * next write, {@link flush} or {@link end}. Throws `FLOTILLA_HOST_CLOSED` after {@link end}.
   */
  write(stream: 'stdout' | 'stderr', chunk: Uint8Array | string): void {
    this.#assertOpen();
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, 'utf8')
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const pending = this.#pending[stream];
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(NEWLINE, start);
      const piece = buf.subarray(start, nl === -1 ? buf.length : nl);
      if (nl !== -1 && pending.length === 0 && piece.length <= this.#maxLineBytes) {
        this.#complete(stream, piece); // the common case: a whole line, decoded in place
      } else {
        this.#take(stream, piece);
        if (nl !== -1) this.#emitPending(stream);
      }
      if (nl === -1) break;
      start = nl + 1;
    }
  }

  /**
   * Adds one whole line (a driver's own message, usually on the `system` stream), cut to
   * `maxLineBytes`. Newlines in it are kept. Throws `FLOTILLA_HOST_CLOSED` after {@link end}.
   */
  append(stream: LogStream, line: string): void {
    this.#assertOpen();
    const bytes = Buffer.from(line, 'utf8');
    if (bytes.length > this.#maxLineBytes) {
      const head = bytes.subarray(0, this.#maxLineBytes);
      line = this.#decoder.decode(head.subarray(0, charBoundary(head)));
    }
    this.#push(stream, line, false);
  }

  /** Completes the partial line of a stream (or of both) as it is, without waiting for `\n`. */
  flush(stream?: 'stdout' | 'stderr'): void {
    for (const s of stream === undefined ? (['stdout', 'stderr'] as const) : [stream]) {
      if (this.#pending[s].length > 0) this.#emitPending(s);
    }
  }

  /** Flushes partial lines and ends the log: followers end after the last line. Idempotent. */
  end(): void {
    if (this.#ended) return;
    this.flush();
    this.#ended = true;
    this.#notify();
  }

  /** The kept lines, oldest first: all, or the newest `tail`. */
  lines(tail?: number): LogLine[] {
    const from = tail === undefined ? this.#first : Math.max(this.#first, this.#next - tail);
    const out: LogLine[] = [];
    for (let seq = from; seq < this.#next; seq++) out.push(this.#at(seq));
    return out;
  }

  /**
   * Reads the kept lines (or the newest `tail`), then, with `follow`, the lines that come next
   * until the log ends or `signal` aborts.
   */
  async *read(options: LogReadOptions = {}): AsyncGenerator<LogLine, void, undefined> {
    const { follow = false, signal } = options;
    checkReadOptions(options);
    const tail = options.tail === undefined ? undefined : intOption(options.tail, 'tail', 0, 0);
    let cursor = tail === undefined ? this.#first : Math.max(this.#first, this.#next - tail);
    const stop = follow ? Infinity : this.#next;
    let missed = 0;
    while (signal?.aborted !== true) {
      if (cursor < this.#first) {
        missed += this.#first - cursor;
        cursor = this.#first;
      }
      if (cursor >= stop) return;
      if (cursor < this.#next) {
        const line = this.#at(cursor++);
        yield missed > 0 ? { ...line, missed } : line;
        missed = 0;
        continue;
      }
      if (this.#ended) return;
      await this.#changed(signal);
    }
  }

  #assertOpen(): void {
    if (this.#ended) {
      throw new HostError(HostErrorCodes.CLOSED, `the log of job ${this.jobId} has ended`, {
        jobId: this.jobId,
      });
    }
  }

  #at(seq: number): LogLine {
    return this.#ring[seq % this.#maxLines] as LogLine;
  }

  /** Adds bytes to a stream's partial line, emitting `partial` pieces past `maxLineBytes`. */
  #take(stream: 'stdout' | 'stderr', bytes: Buffer): void {
    const p = this.#pending[stream];
    while (p.length + bytes.length > this.#maxLineBytes) {
      const room = this.#maxLineBytes - p.length;
      const whole = Buffer.concat([...p.parts, bytes.subarray(0, room)]);
      bytes = bytes.subarray(room);
      const cut = charBoundary(whole);
      this.#push(stream, this.#decoder.decode(whole.subarray(0, cut)), true);
      const rest = whole.subarray(cut);
      p.parts = rest.length > 0 ? [rest] : [];
      p.length = rest.length;
    }
    if (bytes.length > 0) {
      p.parts.push(Buffer.from(bytes)); // a copy: the caller may reuse its buffer
      p.length += bytes.length;
    }
  }

  #emitPending(stream: 'stdout' | 'stderr'): void {
    const p = this.#pending[stream];
    const bytes = p.parts.length === 1 ? (p.parts[0] as Buffer) : Buffer.concat(p.parts);
    p.parts = [];
    p.length = 0;
    this.#complete(stream, bytes);
  }

  /** Adds a line completed by its newline, without a trailing `\r`. */
  #complete(stream: 'stdout' | 'stderr', bytes: Buffer): void {
    const end =
      bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
    this.#push(stream, this.#decoder.decode(bytes.subarray(0, end)), false);
  }

  #push(stream: LogStream, text: string, partial: boolean): void {
    const base = {
      seq: this.#next,
      time: this.#clock.now(),
      stream,
      jobId: this.jobId,
      line: text,
    };
    const line: LogLine = partial ? { ...base, partial: true } : base;
    const size = Buffer.byteLength(text, 'utf8') + LINE_OVERHEAD;
    while (
      this.#next - this.#first >= this.#maxLines ||
      (this.#first < this.#next && this.#bytes + size > this.#maxBytes)
    ) {
      const slot = this.#first % this.#maxLines;
      this.#bytes -= this.#sizes[slot] ?? 0;
      this.#ring[slot] = undefined;
      this.#first++;
    }
    this.#ring[this.#next % this.#maxLines] = line;
    this.#sizes[this.#next % this.#maxLines] = size;
    this.#next++;
    this.#bytes += size;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }

  #changed(signal: AbortSignal | undefined): Promise<void> {
    if (this.#wake === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#wake = { promise, resolve };
    }
    const { promise } = this.#wake;
    if (signal === undefined) return promise;
    return new Promise<void>((resolve) => {
      const onAbort = (): void => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
      void promise.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
}

/**
 * Checks what {@link LogReadOptions} combine: `tail` and `fromStart` contradict each other.
 * Throws `FLOTILLA_HOST_INVALID_OPTIONS`.
 */
export function checkReadOptions(options: LogReadOptions): void {
  if (options.fromStart === true && options.tail !== undefined) {
    throw new HostError(
      HostErrorCodes.INVALID_OPTIONS,
      'logs: fromStart reads from the first line and tail from the newest ones: give one of them',
      { path: 'tail' },
    );
  }
}

/**
 * Where to cut `bytes` so that no UTF-8 character is split: before a lead byte in the last
 * three whose character would run past the end, else at the end (also for invalid input).
 */
function charBoundary(bytes: Buffer): number {
  const end = bytes.length;
  for (let i = end - 1; i >= Math.max(0, end - 4); i--) {
    const b = bytes[i] as number;
    if ((b & 0xc0) === 0x80) continue;
    const len = b < 0x80 ? 1 : (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : 4;
    return i + len > end && i > 0 ? i : end;
  }
  return end;
}
