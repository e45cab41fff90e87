import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from './client.js';

describe('ApiClient.lines', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    if (server?.listening) await new Promise((r) => server?.close(r));
    server = undefined;
  });

  /** A server whose every answer is written by `answer`; its URL. */
  async function serve(answer: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(answer);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('says the connection was lost when the server goes away mid-answer', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('one\n', () => setImmediate(() => res.socket?.destroy()));
    });
    const got: string[] = [];
    const run = (async () => {
      for await (const line of new ApiClient({ url, token: 't' }).lines('GET', '/x'))
        got.push(line);
    })();
    await expect(run).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_API',
      retryable: true,
      message: expect.stringContaining(`the connection to the Flotilla API at ${url} was lost`),
    });
    expect(got).toEqual(['one']);
  });

  it('says the connection was lost when the server goes away before it answers, and cannot be reached when nothing listens', async () => {
    // A server killed with the request in flight: the CLI said "cannot reach ... is `flotilla
    // server` running?", as for a server that was never there.
    const url = await serve((req) => req.socket.destroy());
    await expect(
      (async () => {
        const got: string[] = [];
        for await (const line of new ApiClient({ url, token: 't' }).lines('GET', '/x'))
          got.push(line);
        return got;
      })(),
    ).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_API',
      retryable: true,
      message: expect.stringContaining(
        `the connection to the Flotilla API at ${url} was lost before it answered`,
      ),
    });
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await expect(new ApiClient({ url, token: 't' }).get('/x')).rejects.toMatchObject({
      code: 'FLOTILLA_PAAS_API',
      message: expect.stringContaining(`cannot reach the Flotilla API at ${url}`),
    });
  });

  it('closes the answer when the caller stops reading early', async () => {
    let closed: Promise<unknown> | undefined;
    const url = await serve((_req, res) => {
      closed = once(res, 'close');
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('one\ntwo\n');
    });
    for await (const line of new ApiClient({ url, token: 't' }).lines('GET', '/x')) {
      expect(line).toBe('one');
      break;
    }
    // The server sees its answer closed (the old reader loop left it open: this timed out).
    await closed;
  });
});
