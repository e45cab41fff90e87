import { isFlotillaError } from '@flotilla/core';
import { describe, expect, it } from 'vitest';
import { EtcdStore } from './etcd-store.js';
import type { EtcdStoreOptions } from './options.js';

function configError(options: unknown): unknown {
  try {
    new EtcdStore(options as EtcdStoreOptions);
  } catch (err) {
    return err;
  }
  throw new Error('expected FLOTILLA_ETCD_CONFIG');
}

describe('EtcdStore options', () => {
  it.each([
    ['no options', undefined, 'options'],
    ['no endpoints', { endpoints: [] }, 'endpoints'],
    ['a bad URL', { endpoints: ['http://'] }, 'endpoints'],
    ['another scheme', { endpoints: ['grpc://127.0.0.1:2379'] }, 'endpoints'],
    ['no port', { endpoints: ['http://127.0.0.1'] }, 'endpoints'],
    ['a path', { endpoints: ['http://127.0.0.1:2379/v3'] }, 'endpoints'],
    ['mixed schemes', { endpoints: ['http://a:2379', 'https://b:2379'] }, 'endpoints'],
    ['a broken prefix', { endpoints: ['127.0.0.1:2379'], prefix: 'x\ud800' }, 'prefix'],
    ['tls over http', { endpoints: ['http://a:2379'], tls: {} }, 'tls'],
    ['a cert without key', { endpoints: ['https://a:2379'], tls: { cert: 'PEM' } }, 'tls'],
    ['an empty username', { endpoints: ['a:2379'], auth: { username: '', password: 'x' } }, 'auth'],
    ['a zero timeout', { endpoints: ['a:2379'], requestTimeoutMs: 0 }, 'requestTimeoutMs'],
  ])('refuses %s with FLOTILLA_ETCD_CONFIG', (_name, options, option) => {
    const err = configError(options);
    expect(isFlotillaError(err, 'FLOTILLA_ETCD_CONFIG'), String(err)).toBe(true);
    expect((err as { option?: string }).option).toBe(option);
  });

  it('accepts host:port endpoints and keeps the default prefix', async () => {
    const store = new EtcdStore({ endpoints: '127.0.0.1:2379' });
    expect(store.prefix).toBe('/flotilla/');
    await store.close();
  });

  it('rejects calls after close without ever connecting', async () => {
    const store = new EtcdStore({ endpoints: ['http://127.0.0.1:1'] });
    await store.close();
    await expect(store.get('a')).rejects.toMatchObject({ code: 'FLOTILLA_STORE_CLOSED' });
  });
});
