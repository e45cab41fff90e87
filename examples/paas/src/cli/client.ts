import { PaasError, PaasErrorCodes } from '../errors.js';
import type { Login } from './credentials.js';

/** A thin client of the Flotilla API: JSON in, JSON out, errors as {@link PaasError}. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(login: Pick<Login, 'url' | 'token'>) {
    this.url = login.url.replace(/\/+$/, '');
    this.#token = login.token;
  }

  /** GET a JSON resource. */
  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** A JSON call. */
  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.#fetch(method, path, body, signal);
    const text = await res.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A call whose answer streams: yields its lines as they come. */
  async *lines(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): AsyncGenerator<string> {
    const res = await this.#fetch(method, path, body, signal);
    if (res.body === null) return;
    let rest = '';
    try {
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          yield rest.slice(0, nl);
          rest = rest.slice(nl + 1);
        }
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      // The server went away mid-answer (killed, restarted, the network cut).
      throw new PaasError(
        PaasErrorCodes.API,
        `the connection to the Flotilla API at ${this.url} was lost while it answered: is \`flotilla server\` still running? (${causeMessage(err)})`,
        { retryable: true, cause: err },
      );
    }
    if (rest !== '') yield rest;
  }

  async #fetch(
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      // Connected, then cut before the answer came (the server killed mid-request): not the
      // same as a server that is not there.
      const lost = connectionLost(err);
      throw new PaasError(
        PaasErrorCodes.API,
        lost
          ? `the connection to the Flotilla API at ${this.url} was lost before it answered: is \`flotilla server\` still running? (${causeMessage(err)})`
          : `cannot reach the Flotilla API at ${this.url}: is \`flotilla server\` running? (${causeMessage(err)})`,
        { retryable: true, cause: err },
      );
    }
    if (!res.ok) {
      const text = await res.text();
      let message = `${method} ${path}: HTTP ${res.status}`;
      try {
        const e = JSON.parse(text) as { message?: unknown; details?: unknown };
        if (typeof e.message === 'string') message = e.message;
        // A failed deploy's dynos and their last lines, under the message.
        if (Array.isArray(e.details) && e.details.every((d) => typeof d === 'string'))
          message = [message, ...(e.details as string[])].join('\n');
      } catch {
        // not JSON
      }
      throw new PaasError(PaasErrorCodes.API, message, { status: res.status });
    }
    return res;
  }
}

/** Whether fetch failed on a connection cut after it was made (reset, closed by the server). */
function connectionLost(err: unknown): boolean {
  const cause = (err as Error).cause as { code?: unknown } | undefined;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}

/** What fetch's error says of its cause (`connect ECONNREFUSED 127.0.0.1:7700`, `other side closed`). */
function causeMessage(err: unknown): string {
  const cause = (err as Error).cause;
  return cause instanceof Error ? cause.message : String(err);
}
