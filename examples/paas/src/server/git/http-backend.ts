import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@flotilla/core';

/** What {@link serveGit} needs besides the request. */
export interface GitBackendOptions {
  /** The directory holding every app's bare repository (`<root>/<app>.git`). */
  readonly projectRoot: string;
  /** The path under the project root: `/<app>.git/info/refs`. */
  readonly pathInfo: string;
  /** Extra environment for `git http-backend` and the hooks it runs. */
  readonly env: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /**
   * How long a client may send nothing while its request body is not all in, ms (default
   * 60,000): a push whose client vanished without closing its connection (a laptop put to
   * sleep) is ended, instead of holding its app's pushes for good. Not applied once the body is
   * in: a build may be silent for long.
   */
  readonly bodyIdleTimeoutMs?: number;
}

const DEFAULT_BODY_IDLE_MS = 60_000;

const HEADER_END = Buffer.from('\r\n\r\n');
const HEADER_END_LF = Buffer.from('\n\n');

/**
 * Serves one smart-HTTP request through `git http-backend` as a CGI: the request is mapped to
 * the CGI variables, its body streamed to the backend's stdin and the backend's output (after
 * its CGI headers) streamed back, so that hook output reaches `git push` as it is written.
 */
export function serveGit(
  req: IncomingMessage,
  res: ServerResponse,
  o: GitBackendOptions,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...(process.env.HOME === undefined ? {} : { HOME: process.env.HOME }),
    GIT_PROJECT_ROOT: o.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: o.pathInfo,
    QUERY_STRING: url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method ?? 'GET',
    REMOTE_USER: 'flotilla',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    ...o.env,
  };
  const type = req.headers['content-type'];
  if (type !== undefined) env.CONTENT_TYPE = type;
  const length = req.headers['content-length'];
  if (length !== undefined) env.CONTENT_LENGTH = length;
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined) env.HTTP_CONTENT_ENCODING = encoding;
  const protocol = req.headers['git-protocol'];
  if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;

  return new Promise<void>((resolve) => {
    // A process group of its own: a push given up is ended whole, receive-pack and its hook
    // included (the hook is what builds; git does not pass signals on to hooks).
    const child = spawn('git', ['http-backend'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const killGroup = (): void => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    let head = Buffer.alloc(0);
    let headersSent = false;
    let stderr = '';
    const fail = (status: number, message: string): void => {
      if (!res.headersSent) {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(message + '\n');
      } else res.destroy();
    };
    child.on('error', (err) => {
      o.logger.error({ err }, 'git http-backend could not start');
      fail(500, 'git is not installed on the server');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        if (!res.write(chunk)) {
          child.stdout.pause();
          res.once('drain', () => child.stdout.resume());
        }
        return;
      }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf(HEADER_END);
      let sep = HEADER_END.length;
      if (end < 0) {
        end = head.indexOf(HEADER_END_LF);
        sep = HEADER_END_LF.length;
      }
      if (end < 0) {
        if (head.length > 65536) {
          killGroup();
          fail(502, 'git http-backend sent no headers');
        }
        return;
      }
      const lines = head.subarray(0, end).toString('latin1').split(/\r?\n/);
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon < 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200;
        else headers[name] = value;
      }
      headersSent = true;
      res.writeHead(status, headers);
      // The backend's own buffering decides when pack progress flushes; make sure ours does not.
      res.flushHeaders();
      const rest = head.subarray(end + sep);
      if (rest.length > 0) res.write(rest);
    });
    child.on('close', (code) => {
      stopIdle();
      if (code !== 0) o.logger.warn({ code, stderr: stderr.trim() }, 'git http-backend failed');
      if (!headersSent) fail(500, `git http-backend failed: ${stderr.trim() || `exit ${code}`}`);
      else res.end();
      resolve();
    });
    // A client that stops sending mid-body is dropped, with the backend and its hook.
    const idleMs = o.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_MS;
    const idle = req.complete
      ? undefined
      : setTimeout(() => {
          o.logger.warn(
            { path: o.pathInfo, idleMs },
            'a git client sent nothing for too long mid-request: dropped',
          );
          killGroup();
          req.destroy();
          res.destroy();
        }, idleMs);
    const stopIdle = (): void => clearTimeout(idle);
    if (idle !== undefined) {
      req.on('data', () => idle.refresh());
      req.once('end', stopIdle);
      req.once('close', stopIdle);
    }
    req.pipe(child.stdin);
    child.stdin.on('error', () => undefined);
    // The client went away (ctrl-c on git push): the push's processes go with it.
    req.on('aborted', killGroup);
    res.on('close', killGroup);
  });
}
