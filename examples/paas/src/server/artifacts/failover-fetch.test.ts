import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { failoverFetch } from './failover-fetch.js';

const SHA = 'a'.repeat(64);
const servers: Server[] = [];

/** A loopback server answering every request with `status` and `body`; it records the paths. */
async function serve(status: number, body: string): Promise<{ url: string; paths: string[] }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(`${req.url} ${req.headers.authorization ?? ''}`);
    res.writeHead(status).end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths };
}

/** A loopback address nothing listens on (a server started and closed). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe('failoverFetch', () => {
  it('asks the other servers, with the same token, when the named one is gone or lacks the slug', async () => {
    const dead = await deadUrl();
    const lacks = await serve(404, 'no artifact');
    const has = await serve(200, 'slug');
    const f = failoverFetch(() => Promise.resolve(['not a url', lacks.url, has.url]));
    const res = await f(`${dead}/artifacts/${SHA}`, { headers: { authorization: 'Bearer t' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('slug');
    expect(lacks.paths).toEqual([`/artifacts/${SHA} Bearer t`]);
    expect(has.paths).toEqual([`/artifacts/${SHA} Bearer t`]);
  });

  it('asks nobody else when the named server answers', async () => {
    const named = await serve(200, 'slug');
    const other = await serve(200, 'other');
    const f = failoverFetch(() => Promise.resolve([other.url]));
    expect(await (await f(`${named.url}/artifacts/${SHA}`)).text()).toBe('slug');
    expect(other.paths).toEqual([]);
  });

  it('answers with the last failure when no server has it, and throws when none answers', async () => {
    const lacks = await serve(404, 'no artifact');
    const f = failoverFetch(() => Promise.resolve([lacks.url]));
    expect((await f(`${await deadUrl()}/artifacts/${SHA}`)).status).toBe(404);
    const none = failoverFetch(() => Promise.reject(new Error('store down')));
    await expect(none(`${await deadUrl()}/artifacts/${SHA}`)).rejects.toThrow(/fetch failed/);
  });

  it('sends other URLs where they point, and stops at an abort', async () => {
    const other = await serve(200, 'other');
    const f = failoverFetch(() => Promise.resolve([other.url]));
    await expect(f(`${await deadUrl()}/somewhere/else`)).rejects.toThrow(/fetch failed/);
    await expect(
      f(`${await deadUrl()}/artifacts/${SHA}`, { signal: AbortSignal.abort() }),
    ).rejects.toThrow(/abort/i);
    expect(other.paths).toEqual([]);
  });

  it('asks the next server when the named one accepts the connection and never answers', async () => {
    const frozen = createServer(() => undefined); // a machine frozen mid-request says nothing
    servers.push(frozen);
    await new Promise<void>((r) => frozen.listen(0, '127.0.0.1', r));
    const has = await serve(200, 'slug');
    const f = failoverFetch(() => Promise.resolve([has.url]), fetch, 200);
    // The cache's own stall timer (30 s there) would abort the whole fetch: 5 s here.
    const res = await f(
      `http://127.0.0.1:${(frozen.address() as AddressInfo).port}/artifacts/${SHA}`,
      { signal: AbortSignal.timeout(5000) },
    );
    expect(await res.text()).toBe('slug');
    frozen.closeAllConnections();
  });
});
