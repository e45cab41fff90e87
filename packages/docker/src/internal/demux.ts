/**
 * Splits Docker's multiplexed stream (a container without a TTY: each frame an 8-byte header,
 * stream 1 stdout or 2 stderr, then a big-endian 32-bit length, then the bytes) into its two
 * streams. Frames may be cut anywhere across chunks.
 */
export class Demuxer {
  readonly #onData: (stream: 'stdout' | 'stderr', bytes: Buffer) => void;
  #header = Buffer.alloc(0);
  #stream: 'stdout' | 'stderr' = 'stdout';
  #remaining = 0;

  constructor(onData: (stream: 'stdout' | 'stderr', bytes: Buffer) => void) {
    this.#onData = onData;
  }

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - at);
        this.#onData(this.#stream, chunk.subarray(at, at + n));
        this.#remaining -= n;
        at += n;
        continue;
      }
      const need = 8 - this.#header.length;
      const piece = chunk.subarray(at, at + need);
      this.#header =
        this.#header.length === 0 ? Buffer.from(piece) : Buffer.concat([this.#header, piece]);
      at += piece.length;
      if (this.#header.length < 8) return;
      this.#stream = this.#header[0] === 2 ? 'stderr' : 'stdout';
      this.#remaining = this.#header.readUInt32BE(4);
      this.#header = Buffer.alloc(0);
    }
  }
}
