import { describe, expect, it } from 'vitest';
import { LogFrames, sinceAfter } from './log-frames.js';

/** One frame of Docker's multiplexed stream: 1 stdout, 2 stderr. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('LogFrames', () => {
  it('resumes after the latest message read, not the last one (streams interleave out of order)', () => {
    const got: string[] = [];
    const frames = new LogFrames((stream, bytes) => got.push(`${stream}:${bytes.toString()}`));
    frames.write(frame(2, '2026-12-01T16:20:22.5Z on stderr\n'));
    frames.write(frame(1, '2026-12-01T16:20:22.49Z last words\n'));
    expect(got).toEqual(['stderr:on stderr\n', 'stdout:last words\n']);
    expect(frames.lastTimestamp).toBe('2026-12-01T16:20:22.5Z');
    expect(sinceAfter(frames.lastTimestamp ?? '')).toBe('1796142022.500000001');
  });

  it('a late last line, older than what was read, comes from a read of the tail; lines read are not given twice', () => {
    const got: string[] = [];
    const frames = new LogFrames((stream, bytes) => got.push(`${stream}:${bytes.toString()}`));
    // The follow gave stderr's line and ended; stdout's partial line, stamped before it, was
    // written by dockerd when the job's output closed.
    frames.write(frame(1, '2026-12-01T16:20:22.1Z first\n'));
    frames.write(frame(2, '2026-12-01T16:20:22.5Z on stderr'));
    expect(frames.resumeAfter()).toBe('1796142022.500000001'); // would miss 22.49
    frames.beginReplay();
    frames.write(
      Buffer.concat([
        frame(1, '2026-12-01T16:20:21.9Z lost to the rotation\n'),
        frame(1, '2026-12-01T16:20:22.1Z first\n'),
        frame(2, '2026-12-01T16:20:22.5Z on stderr'),
        frame(1, '2026-12-01T16:20:22.49Z last words'),
      ]),
    );
    expect(got).toEqual(['stdout:first\n', 'stderr:on stderr']); // held until the replay ends
    frames.endReplay();
    // Only what comes after the last line read: a line lost further back stays lost rather
    // than come after later ones.
    expect(got).toEqual(['stdout:first\n', 'stderr:on stderr', 'stdout:last words']);
  });

  it('a replay that a failed read cut short is dropped by the next resume; reads after it give at once', () => {
    const got: string[] = [];
    const frames = new LogFrames((_stream, bytes) => got.push(bytes.toString()));
    frames.write(frame(1, '2026-12-01T16:20:22.1Z a\n'));
    frames.beginReplay();
    frames.write(frame(1, '2026-12-01T16:20:22.1Z a\n'));
    frames.write(frame(1, '2026-12-01T16:20:22.2Z b\n')); // held: the read then fails
    frames.resumeAfter();
    frames.write(frame(1, '2026-12-01T16:20:22.3Z c\n')); // the follow resumed
    expect(got).toEqual(['a\n', 'c\n']);
    frames.endReplay(); // nothing held is left to give
    expect(got).toEqual(['a\n', 'c\n']);
  });

  it('while following, gives every message, also two alike with one timestamp', () => {
    const got: string[] = [];
    const frames = new LogFrames((_stream, bytes) => got.push(bytes.toString()));
    frames.write(frame(1, '2026-12-01T16:20:22.1Z x\n'));
    frames.write(frame(1, '2026-12-01T16:20:22.1Z x\n'));
    expect(got).toEqual(['x\n', 'x\n']);
  });

  it("keeps dockerd's own 'Error grabbing logs' out of the output", () => {
    const got: string[] = [];
    const frames = new LogFrames((_stream, bytes) => got.push(bytes.toString()));
    const all = Buffer.concat([
      frame(1, '2026-12-01T16:20:22.1Z a\n'),
      frame(1, 'Error grabbing logs: no such file or directory\n'),
    ]);
    // cut anywhere across chunks
    frames.write(all.subarray(0, 13));
    frames.write(all.subarray(13));
    expect(got).toEqual(['a\n']);
  });
});
