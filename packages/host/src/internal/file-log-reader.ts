// A `fromStart` read of a ProcessDriver job: its output files from their first byte, paced by
// the consumer, plus the driver's own `system` lines from the job's ring.
import { open, type FileHandle } from 'node:fs/promises';
import { DEFAULT_LOG_MAX_LINE_BYTES, LogBuffer, type LogLine } from '../log-buffer.js';
import { isDropMessage, type FileHold, type LogTailer } from './log-tailer.js';

/** Bytes read per step: what the reader holds at most, beside one line. */
const CHUNK = 32 * 1024;
/** System lines held for a reader that is behind; older ones are dropped. */
const MAX_SYSTEM = 1000;

/** One output file of a job. */
export interface OutputFile {
  readonly path: string;
  readonly stream: 'stdout' | 'stderr';
  /** Its tailer (it truncates the file): held while this reads, and says what it cut. */
  readonly tailer: LogTailer | undefined;
}

/** Options of {@link readFromStart}. */
export interface FromStartOptions {
  readonly jobId: string;
  readonly files: readonly OutputFile[];
  /** The job's ring: its `system` lines are passed on, its growth wakes the reader. */
  readonly ring: LogBuffer;
  readonly maxLineBytes: number | undefined;
  readonly follow: boolean;
  /** A safety net under the ring's wake-ups, ms. */
  readonly pollMs: number;
  readonly signal: AbortSignal | undefined;
}

interface Source extends OutputFile {
  fh: FileHandle | undefined;
  hold: FileHold;
  /** Without follow: the file's size when the read began, where it ends. */
  limit: number;
}

/**
 * Reads a job's output files from byte 0, a chunk at a time, the next only once the lines of
 * the last were taken; follows while the job runs. The driver's `system` lines are passed on
 * when the reader has caught up with the files (the exit message after the last output).
 */
export async function* readFromStart(o: FromStartOptions): AsyncGenerator<LogLine, void> {
  const parse = new LogBuffer(o.jobId, {
    maxLines: 2 * CHUNK + 2 * MAX_SYSTEM,
    maxBytes: 64 * 1024 * 1024,
    maxLineBytes: o.maxLineBytes ?? DEFAULT_LOG_MAX_LINE_BYTES,
  });
  let taken = 0;
  const take = function* (): Generator<LogLine> {
    for (const l of parse.lines(parse.nextSeq - taken)) yield l;
    taken = parse.nextSeq;
  };
  const sources: Source[] = o.files.map((f) => ({
    ...f,
    fh: undefined,
    hold: { position: 0, lost: 0, generation: 0 },
    limit: Infinity,
  }));
  const ringAbort = new AbortController();
  const onAbort = (): void => ringAbort.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const ring = o.ring.read({ follow: true, signal: ringAbort.signal })[Symbol.asyncIterator]();
  const system: LogLine[] = [];
  /** Holds a driver line of the ring until the files are caught up with (the latest MAX_SYSTEM). */
  const keep = (l: LogLine): void => {
    if (!isDriverLine(l)) return;
    system.push(l);
    if (system.length > MAX_SYSTEM) system.shift();
  };
  let ringEnded = false;
  let pending: Promise<IteratorResult<LogLine>> | undefined;
  const buf = Buffer.allocUnsafe(CHUNK);
  if (!o.follow) system.push(...o.ring.lines().filter(isDriverLine));
  try {
    for (const s of sources) {
      s.tailer?.hold(s.hold);
      try {
        s.fh = await open(s.path, 'r');
        if (!o.follow) s.limit = (await s.fh.stat()).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    while (!isAborted(o.signal)) {
      // ended: the job's output is complete in its files (the tailers drained them first)
      const finalPass = ringEnded;
      let read = 0;
      for (const s of sources) {
        const n = await readChunk(s, buf, parse);
        read += n;
        if (s.hold.lost > 0) {
          parse.flush(s.stream);
          parse.append(
            'system',
            `(${s.hold.lost} bytes of ${s.stream} were lost: the output file was cut at its size cap before they were read)`,
          );
          s.hold.lost = 0;
        }
        yield* take();
        if (isAborted(o.signal)) return;
      }
      if (read > 0) continue;
      // caught up with the files: the driver's lines seen meanwhile
      for (const l of system.splice(0)) parse.append('system', l.line);
      yield* take();
      if (finalPass) {
        parse.end();
        yield* take();
        return;
      }
      if (!o.follow) {
        // what the ring has now is all there is to read: once more, then the end
        ringEnded = true;
        continue;
      }
      // wait for the ring to move (the job wrote, or ended), or the poll
      pending ??= ring.next();
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        pending,
        new Promise<undefined>(
          (resolve) => (timer = setTimeout(() => resolve(undefined), o.pollMs)),
        ),
      ]);
      clearTimeout(timer);
      if (r === undefined) continue;
      pending = undefined;
      if (r.done === true) ringEnded = true;
      else {
        keep(r.value);
        // lines that are already here need no wait of their own
        for (;;) {
          const next = ring.next();
          const more = await Promise.race([next, Promise.resolve(undefined)]);
          if (more === undefined) {
            pending = next;
            break;
          }
          if (more.done === true) {
            ringEnded = true;
            break;
          }
          keep(more.value);
        }
      }
    }
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    ringAbort.abort();
    for (const s of sources) {
      s.tailer?.release(s.hold);
      await s.fh?.close();
    }
  }
}

/** Reads the next chunk of a file into `parse`; 0 at its end. A read a truncation voided is redone. */
async function readChunk(s: Source, buf: Buffer, parse: LogBuffer): Promise<number> {
  if (s.fh === undefined) return 0;
  for (;;) {
    const { generation, position } = s.hold;
    const want = Math.min(buf.length, s.limit - position);
    if (want <= 0) return 0;
    const { bytesRead } = await s.fh.read(buf, 0, want, position);
    if (s.hold.generation !== generation) {
      // cut meanwhile: what was read is lost; a read without follow ends there
      if (s.limit !== Infinity) s.limit = 0;
      continue;
    }
    if (bytesRead === 0) {
      // truncated by someone else (not our tailer): start over
      const { size } = await s.fh.stat();
      if (size < position && s.hold.generation === generation) {
        s.hold.lost += position - size; // at least; what the file had past it is unknown
        s.hold.position = 0;
        s.hold.generation++;
        if (s.limit !== Infinity) s.limit = 0;
        continue;
      }
      return 0;
    }
    s.hold.position += bytesRead;
    parse.write(s.stream, buf.subarray(0, bytesRead));
    return bytesRead;
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** A `system` line of the driver, not the ring's own word of what it dropped (told here in bytes). */
function isDriverLine(l: LogLine): boolean {
  return l.stream === 'system' && !isDropMessage(l.line);
}
