import type { ServerResponse } from 'node:http';
import { once } from 'node:events';

/** Writes a response in pieces, waiting when the client reads slower than we write. */
export class ResponseStream {
  readonly #res: ServerResponse;

  /**
   * Sends the head at once, so the client sees the response start before the first piece.
   * @param res - the response
   * @param contentType - `application/x-ndjson`, `text/plain`, `text/event-stream`
   */
  constructor(res: ServerResponse, contentType: string, status = 200) {
    this.#res = res;
    res.writeHead(status, {
      'content-type': contentType,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }

  /** Whether the client is gone. */
  get closed(): boolean {
    return this.#res.destroyed || this.#res.writableEnded;
  }

  /** Writes a piece; resolves when it may write again. */
  async write(text: string): Promise<void> {
    if (this.closed) return;
    if (!this.#res.write(text))
      await Promise.race([once(this.#res, 'drain'), once(this.#res, 'close')]);
  }

  /** Writes a JSON value and a newline. */
  json(value: unknown): Promise<void> {
    return this.write(JSON.stringify(value) + '\n');
  }

  /** Ends the response. */
  end(): void {
    if (!this.#res.writableEnded) this.#res.end();
  }
}
