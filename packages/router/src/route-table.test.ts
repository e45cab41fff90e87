import { MemoryStore } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RouteTable, validateRoute } from './index.js';

let store: MemoryStore;
let table: RouteTable;
beforeEach(() => {
  store = new MemoryStore();
  table = new RouteTable(store);
});
afterEach(async () => {
  await store.close();
});

describe('RouteTable', () => {
  it('stores routes normalised, replaces by domain and path or by port, lists and removes them', async () => {
    const a = await table.set({
      type: 'http',
      domain: 'Demo.Example.com.',
      path: '/api/',
      service: 'api',
      sticky: false,
    });
    expect(a).toEqual({
      type: 'http',
      domain: 'demo.example.com',
      path: '/api',
      service: 'api',
      id: a.id,
    });
    const a2 = await table.set({
      type: 'http',
      domain: 'demo.example.com',
      path: '/api',
      service: 'api-v2',
      maxBodyBytes: 1024,
    });
    expect(a2.id).toBe(a.id);
    const t = await table.set({ type: 'tcp', port: 5432, service: 'db' });
    expect(t.id).toBe('tcp-5432');
    await table.set({ type: 'tcp', port: 5432, service: 'db2' });
    expect(await table.list()).toEqual(
      [
        {
          type: 'http',
          domain: 'demo.example.com',
          path: '/api',
          service: 'api-v2',
          maxBodyBytes: 1024,
          id: a.id,
        },
        { type: 'tcp', port: 5432, service: 'db2', id: 'tcp-5432' },
      ].sort((x, y) => (x.id < y.id ? -1 : 1)),
    );
    expect(await table.list({ service: 'db2' })).toHaveLength(1);
    expect(await table.remove(a.id)).toBe(true);
    expect(await table.remove(a.id)).toBe(false);
    expect(await table.list({ service: 'api-v2' })).toEqual([]);
  });

  const bad: [string, unknown][] = [
    ['not an object', 'http://x'],
    ['null', null],
    ['unknown type', { type: 'udp', port: 1, service: 'x' }],
    ['domain with a slash', { type: 'http', domain: 'a/b.com', service: 'x' }],
    ['domain with NUL', { type: 'http', domain: 'a\0.com', service: 'x' }],
    ['empty domain', { type: 'http', domain: '', service: 'x' }],
    ['huge domain', { type: 'http', domain: `${'a'.repeat(63)}.`.repeat(5) + 'com', service: 'x' }],
    ['wildcard in the middle', { type: 'http', domain: 'a.*.com', service: 'x' }],
    ['path without slash', { type: 'http', domain: 'a.com', path: 'api', service: 'x' }],
    ['path with a query', { type: 'http', domain: 'a.com', path: '/a?b', service: 'x' }],
    ['path with a space', { type: 'http', domain: 'a.com', path: '/a b', service: 'x' }],
    ['path with NUL', { type: 'http', domain: 'a.com', path: '/a\0', service: 'x' }],
    ['service with a slash', { type: 'http', domain: 'a.com', service: 'a/b' }],
    ['service upper case', { type: 'http', domain: 'a.com', service: 'Web' }],
    ['sticky not boolean', { type: 'http', domain: 'a.com', service: 'x', sticky: 'yes' }],
    ['negative maxBodyBytes', { type: 'http', domain: 'a.com', service: 'x', maxBodyBytes: -1 }],
    ['NaN maxBodyBytes', { type: 'http', domain: 'a.com', service: 'x', maxBodyBytes: Number.NaN }],
    ['unknown field', { type: 'http', domain: 'a.com', service: 'x', certificate: 'x' }],
    ['port 0', { type: 'tcp', port: 0, service: 'x' }],
    ['port NaN', { type: 'tcp', port: Number.NaN, service: 'x' }],
    ['port 65536', { type: 'tcp', port: 65536, service: 'x' }],
    ['port as string', { type: 'tcp', port: '80', service: 'x' }],
    ['wrong id', { type: 'tcp', port: 80, service: 'x', id: 'tcp-81' }],
  ];
  it.each(bad)('refuses %s with INVALID_ROUTE and writes nothing', async (_name, route) => {
    await expect(table.set(route as never)).rejects.toMatchObject({
      code: 'FLOTILLA_ROUTER_INVALID_ROUTE',
    });
    expect((await store.list('')).kvs).toEqual([]);
  });

  it('refuses a malformed id on remove', async () => {
    await expect(table.remove('../../etc')).rejects.toMatchObject({
      code: 'FLOTILLA_ROUTER_INVALID_ROUTE_ID',
    });
    await expect(table.remove('tcp-80/x')).rejects.toMatchObject({
      code: 'FLOTILLA_ROUTER_INVALID_ROUTE_ID',
    });
  });

  it('reports entries that are not routes, and leaves them out', async () => {
    await table.set({ type: 'tcp', port: 80, service: 'web' });
    await store.put('router/routes/tcp-81', 'not json');
    await store.put(
      'router/routes/tcp-82',
      JSON.stringify({ type: 'tcp', port: 83, service: 'x' }),
    );
    const reported: string[] = [];
    const t = new RouteTable(store, {
      onInvalidRecord: (err) => reported.push(`${err.code} ${err.key}`),
    });
    expect((await t.list()).map((r) => r.id)).toEqual(['tcp-80']);
    expect(reported).toEqual([
      'FLOTILLA_ROUTER_INVALID_RECORD router/routes/tcp-81',
      'FLOTILLA_ROUTER_INVALID_RECORD router/routes/tcp-82',
    ]);
  });

  it('keeps a wildcard and a root path as given', () => {
    expect(validateRoute({ type: 'http', domain: '*.Example.com', service: 'x' })).toMatchObject({
      domain: '*.example.com',
      path: '/',
    });
  });
});
