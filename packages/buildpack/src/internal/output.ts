import { TextDecoder } from 'node:util';
import type { Logger } from '@flotilla/core';
// The build's output: split into lines, streamed to the caller's onOutput, and kept (its tail,
// when a buildpack prints more than the limit) for the result or the error.

/** The longest line handed to onOutput; a longer run without a newline is cut into pieces. */
const MAX_LINE = 64 * 1024;

/** Collects a build's output as lines. */
export class OutputLog {
  readonly #onLine: (line: string) => void;
  readonly #maxBytes: number;
  readonly #lines: string[] = [];
  #bytes = 0;
  #dropped = 0;
  /** Index of the first kept line in #lines; those before it were dropped. */
  #head = 0;
  readonly #partial = new Map<string, string>();
  readonly #decoders = new Map<string, TextDecoder>();

  readonly #logger: Logger;
  #listenerFailed = false;

  constructor(onLine: ((line: string) => void) | undefined, maxBytes: number, logger: Logger) {
    this.#onLine = onLine ?? (() => undefined);
    this.#maxBytes = maxBytes;
    this.#logger = logger;
  }

  /** A line of the runner's own, Heroku style: `-----> text`. */
  step(text: string): void {
    this.#line(`-----> ${text}`);
  }

  /** A detail line of the runner's own, indented seven spaces. */
  detail(text: string): void {
    this.#line(`       ${text}`);
  }

  /** A warning line of the runner's own: ` !     text`. */
  warn(text: string): void {
    this.#line(` !     ${text}`);
  }

  /** Raw output of a step on one of its streams. */
  chunk(stream: string, chunk: Buffer): void {
    let decoder = this.#decoders.get(stream);
    if (decoder === undefined) {
      decoder = new TextDecoder('utf-8');
      this.#decoders.set(stream, decoder);
    }
    const text = (this.#partial.get(stream) ?? '') + decoder.decode(chunk, { stream: true });
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      if (nl !== -1 && nl - at <= MAX_LINE) {
        this.#line(text.slice(at, nl).replace(/\r$/, ''));
        at = nl + 1;
      } else if (text.length - at > MAX_LINE) {
        this.#line(text.slice(at, at + MAX_LINE));
        at += MAX_LINE;
      } else break;
    }
    this.#partial.set(stream, text.slice(at));
  }

  /** Ends a step: flushes the lines its streams left without a newline. */
  flush(): void {
    for (const [stream, decoder] of this.#decoders) {
      const rest = (this.#partial.get(stream) ?? '') + decoder.decode();
      if (rest !== '') this.#line(rest);
    }
    this.#partial.clear();
    this.#decoders.clear();
  }

  /** Everything kept, one line per `\n`. */
  text(): string {
    const head = this.#dropped > 0 ? [`[${this.#dropped} earlier lines dropped]`] : [];
    return [...head, ...this.#lines.slice(this.#head)].map((l) => `${l}\n`).join('');
  }

  #line(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length + 1;
    while (this.#bytes > this.#maxBytes && this.#lines.length - this.#head > 1) {
      this.#bytes -= (this.#lines[this.#head] ?? '').length + 1;
      this.#lines[this.#head++] = '';
      this.#dropped++;
    }
    // Dropped lines are cut off in bulk: shifting one at a time made endless output quadratic.
    if (this.#head > 1024 && this.#head * 2 > this.#lines.length) {
      this.#lines.splice(0, this.#head);
      this.#head = 0;
    }
    try {
      const returned: unknown = this.#onLine(line);
      if (returned instanceof Promise) returned.catch((err: unknown) => this.#failed(err));
    } catch (err) {
      this.#failed(err);
    }
  }

  /** A listener that throws must not take down the build (or the process, from inside a stream's data event); it is reported once. */
  #failed(err: unknown): void {
    if (!this.#listenerFailed) this.#logger.warn({ err }, 'buildpack: onOutput threw');
    this.#listenerFailed = true;
  }
}
