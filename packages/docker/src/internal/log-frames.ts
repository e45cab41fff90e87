/** How many of the last messages read are remembered, to skip them when read again. */
export const RECENT_MESSAGES = 1024;

/**
 * Reads Docker's multiplexed log stream requested with `timestamps: true`: each frame (8-byte
 * header: stream 1 stdout or 2 stderr, big-endian 32-bit length) holds one log message,
 * prefixed with its RFC 3339 timestamp and a space. Frames may be cut anywhere across chunks.
 * The timestamp of the last message read lets a reader resume after dockerd went away without
 * reading a line twice ({@link sinceAfter}).
 */
export class LogFrames {
  readonly #onData: (stream: 'stdout' | 'stderr', bytes: Buffer) => void;
  #pending: Buffer = Buffer.alloc(0);
  /**
   * The latest timestamp of the whole messages read, as Docker wrote it. The latest, not the
   * last: a follow may give a stream's message after a later one of the other stream, and a
   * read resumed after the last one would give that later message twice.
   */
  lastTimestamp: string | undefined;
  #latest: bigint | undefined;
  /**
   * The last messages read, by stream, timestamp, length and first bytes (at most
   * {@link RECENT_MESSAGES}): given again by a read of the output's tail ({@link
   * LogFrames.beginReplay}), they are skipped. A message of one stream can come
   * after later ones of the other, even after a follow ended: a partial last line is written
   * when the job's output closes, stamped when its first bytes were read. A read resumed after
   * the latest timestamp misses it; one of the tail does not.
   */
  readonly #recent: (string | undefined)[] = new Array<string | undefined>(RECENT_MESSAGES);
  #next = 0;
  /** How many times each key is among the last messages (a long line's pieces share one). */
  readonly #recentKeys = new Map<string, number>();
  /** Set by {@link LogFrames.beginReplay}: messages are held. Off while following. */
  #replaying = false;
  readonly #replayed: { stream: 'stdout' | 'stderr'; line: Buffer; key: string }[] = [];

  constructor(onData: (stream: 'stdout' | 'stderr', bytes: Buffer) => void) {
    this.#onData = onData;
  }

  write(chunk: Buffer): void {
    let buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const stream = buf[0] === 2 ? 'stderr' : 'stdout';
      const payload = buf.subarray(8, 8 + size);
      const space = payload.indexOf(0x20);
      if (space > 0 && space <= 40 && payload[space - 1] === 0x5a /* Z */) {
        const timestamp = payload.subarray(0, space).toString('latin1');
        const at = nanosOf(timestamp);
        if (at === undefined || this.#latest === undefined || at > this.#latest) {
          this.lastTimestamp = timestamp;
          this.#latest = at;
        }
        const line = payload.subarray(space + 1);
        // Enough to tell one message from another of the same stream and nanosecond, without
        // hashing every line while following (what the key is for is rare: a replay).
        const key = `${stream} ${timestamp} ${line.length} ${line.subarray(0, 32).toString('latin1')}`;
        if (this.#replaying) this.#replayed.push({ stream, line: Buffer.from(line), key });
        else {
          this.#remember(key);
          this.#onData(stream, line);
        }
      } else if (!payload.subarray(0, GRABBING.length).equals(GRABBING)) {
        // Passed on as it is, but for dockerd's own `Error grabbing logs: ...` (no timestamp: a
        // follower that fell behind the json-file rotation), which is not the job's output.
        this.#onData(stream, payload);
      }
      buf = buf.subarray(8 + size);
    }
    this.#pending = Buffer.from(buf);
  }

  /** Drops what a cut read left unfinished: a new read starts at a frame's header. */
  dropPartial(): void {
    this.#pending = Buffer.alloc(0);
  }

  /**
   * Docker's `since` for a new read of the output after the latest message read (undefined when
   * none was: read it all, or its tail). What a cut read left unfinished is dropped, and so is
   * a replay it cut short.
   */
  resumeAfter(): string | undefined {
    this.dropPartial();
    // A replay that a failed read cut short is dropped: the reads start over.
    this.#replaying = false;
    this.#replayed.length = 0;
    return this.lastTimestamp === undefined ? undefined : sinceAfter(this.lastTimestamp);
  }

  /**
   * Starts a read of output partly read already (its tail, once the job ended): its messages
   * are held until {@link LogFrames.endReplay}.
   */
  beginReplay(): void {
    this.#replaying = true;
  }

  /**
   * Gives the messages of the replayed read that come after the last one read before (same
   * stream, timestamp and bytes), in their order, and ends the replay. Those before it are not
   * given: a line the follow missed further back (it fell behind the log rotation) would come
   * after later ones. None is given when the read holds none of those read before.
   */
  endReplay(): void {
    this.#replaying = false;
    const replayed = this.#replayed.splice(0);
    let last = -1;
    for (let i = replayed.length - 1; i >= 0; i--) {
      if (this.#recentKeys.has((replayed[i] as { key: string }).key)) {
        last = i;
        break;
      }
    }
    if (last === -1) return;
    for (const m of replayed.slice(last + 1)) {
      if (this.#recentKeys.has(m.key)) continue;
      this.#remember(m.key);
      this.#onData(m.stream, m.line);
    }
  }

  #remember(key: string): void {
    const gone = this.#recent[this.#next];
    this.#recent[this.#next] = key;
    this.#next = (this.#next + 1) % RECENT_MESSAGES;
    this.#recentKeys.set(key, (this.#recentKeys.get(key) ?? 0) + 1);
    if (gone === undefined) return;
    const n = (this.#recentKeys.get(gone) ?? 1) - 1;
    if (n > 0) this.#recentKeys.set(gone, n);
    else this.#recentKeys.delete(gone);
  }
}

/** How dockerd's own error in a log stream starts (daemon/logs.go). */
const GRABBING = Buffer.from('Error grabbing logs: ');

/**
 * Docker's `since` (seconds with nanoseconds) for the instant 1 ns after an RFC 3339 timestamp
 * such as `2026-12-01T16:20:22.123456789Z`: logs from there on exclude that message.
 */
export function sinceAfter(timestamp: string): string | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(timestamp);
  if (m === null) return undefined;
  let seconds = Date.parse(`${m[1] as string}Z`) / 1000;
  if (!Number.isFinite(seconds)) return undefined;
  let nanos = Number((m[2] ?? '').padEnd(9, '0')) + 1;
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

/** An RFC 3339 timestamp as nanoseconds since the epoch, to compare; undefined if unreadable. */
function nanosOf(timestamp: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(timestamp);
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1] as string}Z`);
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}
