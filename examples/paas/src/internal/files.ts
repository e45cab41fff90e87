import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { PaasError, PaasErrorCodes } from '../errors.js';

/** A fresh name under `dir`. */
export function tempPath(dir: string, prefix: string): string {
  return join(dir, `${prefix}-${Date.now()}-${randomBytes(6).toString('hex')}`);
}

/** Writes a request body to a file, refusing more than `maxBytes`; the file is removed on failure. */
export async function saveBody(
  req: IncomingMessage,
  path: string,
  maxBytes: number,
): Promise<number> {
  let size = 0;
  const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes)
        throw new PaasError(PaasErrorCodes.TOO_LARGE, `the upload is over ${maxBytes} bytes`, {
          status: 413,
        });
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    return size;
  } catch (err) {
    out.destroy();
    await rm(path, { force: true });
    req.resume();
    throw err;
  }
}

/**
 * Extracts a tar stream (what `git archive` sends) into a new directory `dir` with the system
 * `tar`, which refuses absolute names and `..` and never follows a symlink it made out of the
 * tree; at most `maxBytes` of tar are read. The directory is removed on failure.
 */
export async function extractTar(
  req: IncomingMessage,
  dir: string,
  maxBytes: number,
): Promise<void> {
  await mkdir(dir, { recursive: false, mode: 0o700 });
  try {
    await new Promise<void>((resolve, reject) => {
      const tar = spawn(
        'tar',
        ['-x', '-f', '-', '-C', dir, '--no-same-owner', '--no-same-permissions'],
        {
          stdio: ['pipe', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      let size = 0;
      let failed: Error | undefined;
      tar.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s.slice(0, 4096)));
      tar.on('error', reject);
      tar.stdin.on('error', () => undefined);
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes && failed === undefined) {
          failed = new PaasError(PaasErrorCodes.TOO_LARGE, `the source is over ${maxBytes} bytes`, {
            status: 413,
          });
          req.unpipe(tar.stdin);
          tar.kill('SIGKILL');
        }
      });
      req.pipe(tar.stdin);
      tar.on('close', (code) => {
        if (failed !== undefined) reject(failed);
        else if (code !== 0)
          reject(
            new PaasError(
              PaasErrorCodes.GIT,
              `the pushed tree cannot be extracted: ${stderr.trim()}`,
            ),
          );
        else resolve();
      });
    });
  } catch (err) {
    req.resume();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
