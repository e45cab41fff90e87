import type { Clock, Logger } from '@flotilla/core';
import { listAndWatch, type Store } from '@flotilla/store';
import type { BuildOutputLine } from '../build.js';
import type { ControllerKeys } from './keys.js';
import { decode, parseOutputChunk } from './records.js';

/** Most bytes of output kept per build; past it one line says the rest was cut. */
export const MAX_BUILD_OUTPUT = 4 * 1024 * 1024;
const MAX_LINE = 16 * 1024;
const FLUSH_MS = 100;
const FLUSH_LINES = 200;

/**
 * Writes a build's output to the store in chunks (`build-output/<app>/<build>/<first seq>`),
 * so that any controller on the store can follow it while it runs and read it after. Lines are
 * cut at newlines (a partial one is held), long lines split at 16 KiB, the whole bounded by
 * {@link MAX_BUILD_OUTPUT}. The last chunk carries `end: true`.
 */
export class BuildOutputWriter {
  #seq = 0;
  #partial = '';
  #pending: BuildOutputLine[] = [];
  #bytes = 0;
  #truncated = false;
  #timer: unknown;
  #flushing: Promise<void> = Promise.resolve();
  #ended = false;

  constructor(
    readonly store: Store,
    readonly keys: ControllerKeys,
    readonly app: string,
    readonly build: string,
    readonly clock: Clock,
    readonly logger: Logger,
    readonly onLine: (line: BuildOutputLine) => void,
  ) {}

  /** Adds raw output (any chunking). */
  write(chunk: string): void {
    if (this.#ended) return;
    const text = this.#partial + chunk;
    const parts = text.split('\n');
    this.#partial = parts.pop() ?? '';
    for (const p of parts) this.#line(p.replace(/\r$/, ''));
    while (this.#partial.length > MAX_LINE) {
      this.#line(this.#partial.slice(0, MAX_LINE));
      this.#partial = this.#partial.slice(MAX_LINE);
    }
  }

  /** Adds whole lines. */
  line(text: string): void {
    this.write(`${text}\n`);
  }

  #line(text: string): void {
    for (let i = 0; i === 0 || i < text.length; i += MAX_LINE)
      this.#add(text.slice(i, i + MAX_LINE));
  }

  #add(text: string): void {
    if (this.#truncated) return;
    this.#bytes += Buffer.byteLength(text) + 1;
    if (this.#bytes > MAX_BUILD_OUTPUT) {
      this.#truncated = true;
      text = `(output truncated: more than ${MAX_BUILD_OUTPUT} bytes)`;
    }
    const line = { seq: this.#seq++, time: this.clock.now(), line: text };
    this.#pending.push(line);
    this.onLine(line);
    if (this.#pending.length >= FLUSH_LINES) void this.flush();
    else this.#timer ??= this.clock.setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes what is pending. Chunks are written in order, one at a time. */
  flush(end = false): Promise<void> {
    if (this.#timer !== undefined) {
      this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const lines = this.#pending;
    this.#pending = [];
    if (lines.length === 0 && !end) return this.#flushing;
    const first = lines[0]?.seq ?? this.#seq;
    const value = JSON.stringify(end ? { lines, end: true } : { lines });
    this.#flushing = this.#flushing.then(async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await this.store.put(this.keys.output(this.app, this.build, first), value);
          return;
        } catch (err) {
          this.logger.warn(
            { err, build: this.build },
            'build output could not be written: retrying',
          );
          await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 100 * 2 ** attempt));
        }
      }
    });
    return this.#flushing;
  }

  /** Flushes the partial line and what is pending, with the end mark. */
  async end(): Promise<void> {
    if (this.#ended) return this.#flushing;
    if (this.#partial !== '') this.#line(this.#partial);
    this.#partial = '';
    this.#ended = true;
    await this.flush(true);
  }
}

/** Writes an end mark for a build whose writer died (the reaper's). */
export async function endOutput(
  store: Store,
  keys: ControllerKeys,
  app: string,
  build: string,
  line: string,
  clock: Clock,
): Promise<void> {
  const existing = await store.list(keys.outputOf(app, build));
  let next = 0;
  for (const kv of existing.kvs) {
    const chunk = decode(kv, parseOutputChunk);
    if (chunk.end === true) return;
    for (const l of chunk.lines) next = Math.max(next, l.seq + 1);
  }
  await store.put(
    keys.output(app, build, next),
    JSON.stringify({ lines: [{ seq: next, time: clock.now(), line }], end: true }),
  );
}

/** Follows a build's output: what is kept, then (with `follow`) new lines until the end mark. */
export async function* readOutput(
  store: Store,
  keys: ControllerKeys,
  app: string,
  build: string,
  options: { follow: boolean; after: number; signal?: AbortSignal; clock: Clock },
): AsyncGenerator<BuildOutputLine> {
  const inner = new AbortController();
  const onAbort = (): void => inner.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let next = options.after + 1;
  try {
    for await (const item of listAndWatch(store, keys.outputOf(app, build), {
      signal: inner.signal,
      clock: options.clock,
    })) {
      const kvs =
        item.type === 'snapshot' ? item.kvs : item.event.type === 'put' ? [item.event.kv] : [];
      let ended = false;
      for (const kv of kvs) {
        const chunk = decode(kv, parseOutputChunk);
        for (const l of chunk.lines) {
          if (l.seq < next) continue;
          next = l.seq + 1;
          yield l;
        }
        if (chunk.end === true) ended = true;
      }
      if (ended) return;
      if (item.type === 'snapshot' && !options.follow) return;
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    inner.abort();
  }
}
