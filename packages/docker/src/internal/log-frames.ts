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
        this.#onData(stream, payload.subarray(space + 1));
      } else if (!payload.subarray(0, GRABBING.length).equals(GRABBING)) {
        // Passed on as it is, but for dockerd's own `Error grabbing logs: ...` (no timestamp: a
        // follower that fell behind the json-file rotation), which is not the job's output.
        this.#onData(stream, payload);
      }
      buf = buf.subarray(8 + size);
    }
    this.#pending = Buffer.from(buf);
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
