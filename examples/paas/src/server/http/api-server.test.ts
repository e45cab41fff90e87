import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@flotilla/core';
import { z } from 'zod';
import { ApiServer } from './api-server.js';
import { readJson } from './body.js';
import { Routes, Status } from './routes.js';

const token = 'test-token-0123456789';
let server: ApiServer;
let url: string;
let calls: unknown[];

beforeEach(async () => {
  calls = [];
  const routes = new Routes()
    .on('GET', '/apps/:app', async ({ params }) => ({ name: params.app }))
    .on('POST', '/apps', async ({ req }) => {
      const body = await readJson(
        req,
        z.strictObject({ name: z.string().regex(/^[a-z]+$/, 'lower case only') }),
      );
      calls.push(body);
      return new Status(201, body);
    })
    .on('GET', '/wait', async ({ signal }) => {
      await new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      calls.push(`aborted: ${String((signal.reason as Error).message)}`);
    })
    .on('GET', '/boom', async () => {
      throw new Error('secret internals');
    });
  server = new ApiServer({ token, routes, logger: silentLogger });
  server.raw('/git/', async (_req, res) => {
    calls.push('git');
    res.end('git');
  });
  const addr = await server.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${addr.port}`;
  server.ready();
});
afterEach(async () => {
  await server.close();
});

const call = (
  path: string,
  init: RequestInit = {},
  auth: string | null = `Bearer ${token}`,
): Promise<Response> =>
  fetch(url + path, {
    ...init,
    headers: { ...(auth === null ? {} : { authorization: auth }), ...(init.headers ?? {}) },
  });

describe('ApiServer', () => {
  it('refuses calls without the token with 401 and a JSON error, and runs nothing', async () => {
    for (const auth of [
      null,
      'Bearer wrong',
      'Basic ' + Buffer.from('x:wrong').toString('base64'),
      'Bearer',
      'Digest abc',
    ]) {
      const res = await call('/apps', { method: 'POST', body: '{"name":"x"}' }, auth);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({
        id: 'unauthorized',
        code: 'FLOTILLA_PAAS_UNAUTHORIZED',
      });
      const git = await call('/git/demo.git/info/refs', {}, auth);
      expect(git.status).toBe(401);
      expect(git.headers.get('www-authenticate')).toContain('Basic');
    }
    expect(calls).toEqual([]);
  });

  it('takes the token as bearer or as the password of basic auth (what git sends)', async () => {
    expect((await call('/apps/demo')).status).toBe(200);
    const basic = 'Basic ' + Buffer.from(`anyone:${token}`).toString('base64');
    expect(await (await call('/git/demo.git/info/refs', {}, basic)).text()).toBe('git');
  });

  it('validates bodies: 400 for non-JSON, 422 naming the field, 413 for huge bodies', async () => {
    const bad = await call('/apps', { method: 'POST', body: '{nope' });
    expect(bad.status).toBe(400);
    const invalid = await call('/apps', { method: 'POST', body: '{"name":"UPPER"}' });
    expect(invalid.status).toBe(422);
    expect(await invalid.json()).toEqual({
      id: 'invalid_params',
      message: 'name: lower case only',
      code: 'FLOTILLA_PAAS_INVALID_REQUEST',
    });
    const extra = await call('/apps', { method: 'POST', body: '{"name":"a","admin":true}' });
    expect(extra.status).toBe(422);
    const huge = await call('/apps', {
      method: 'POST',
      body: JSON.stringify({ name: 'a'.repeat(2 * 1024 * 1024) }),
    });
    expect(huge.status).toBe(413);
    expect(calls).toEqual([]);
    expect((await call('/apps', { method: 'POST', body: '{"name":"ok"}' })).status).toBe(201);
  });

  it('answers 404 and 405 as JSON, and a failure as 500 without internals', async () => {
    expect(await (await call('/nope')).json()).toMatchObject({ id: 'not_found' });
    const wrongMethod = await call('/apps/demo', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    const boom = await call('/boom');
    expect(boom.status).toBe(500);
    expect(JSON.stringify(await boom.json())).not.toContain('secret');
    expect((await call('/apps/%E0%A4%A')).status).toBe(404);
  });

  it('answers 503 until ready', async () => {
    const routes = new Routes().on('GET', '/x', async () => 1);
    const s2 = new ApiServer({ token, routes, logger: silentLogger });
    const addr = await s2.listen(0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${addr.port}/x`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(503);
      s2.ready();
      expect(
        (
          await fetch(`http://127.0.0.1:${addr.port}/x`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).status,
      ).toBe(200);
    } finally {
      await s2.close();
      await s2.close();
    }
  });

  it('aborts a call whose client ended its socket (a streaming answer that writes nothing yet)', async () => {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /wait HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\n\r\n`);
    socket.end();
    await new Promise((r) => socket.once('close', r));
    await expect.poll(() => calls).toEqual(['aborted: the client went away']);
  });
});
