import { describe, expect, it } from 'vitest';
import { FlotillaError, isFlotillaError } from './errors.js';

class DemoError extends FlotillaError<'FLOTILLA_DEMO_BROKEN'> {
  constructor(readonly key: string) {
    super('FLOTILLA_DEMO_BROKEN', `key ${key} is broken: fix it`);
  }
}

describe('FlotillaError', () => {
  it('carries code, message, cause and retryable', () => {
    const cause = new Error('ECONNREFUSED');
    const err = new FlotillaError('FLOTILLA_DEMO_DOWN', 'etcd is down', { cause, retryable: true });
    expect(err.code).toBe('FLOTILLA_DEMO_DOWN');
    expect(err.message).toBe('etcd is down');
    expect(err.cause).toBe(cause);
    expect(err.retryable).toBe(true);
    expect(err).toBeInstanceOf(Error);
    expect(err.stack).toContain('etcd is down');
  });

  it('is not retryable and has no cause unless told', () => {
    const err = new FlotillaError('FLOTILLA_DEMO_BAD', 'bad');
    expect(err.retryable).toBe(false);
    expect('cause' in err).toBe(false);
  });

  it('names subclasses after themselves and keeps their typed fields', () => {
    const err = new DemoError('a');
    expect(err.name).toBe('DemoError');
    expect(err.key).toBe('a');
    expect(String(err)).toBe('DemoError: key a is broken: fix it');
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      name: 'DemoError',
      code: 'FLOTILLA_DEMO_BROKEN',
      message: 'key a is broken: fix it',
      retryable: false,
    });
  });
});

describe('isFlotillaError', () => {
  it('matches Flotilla errors, optionally by code', () => {
    const err = new DemoError('a');
    expect(isFlotillaError(err)).toBe(true);
    expect(isFlotillaError(err, 'FLOTILLA_DEMO_BROKEN')).toBe(true);
    expect(isFlotillaError(err, 'FLOTILLA_DEMO_OTHER')).toBe(false);
  });

  it('rejects other values, including look-alikes with a code field', () => {
    expect(isFlotillaError(new Error('x'))).toBe(false);
    expect(isFlotillaError({ code: 'FLOTILLA_DEMO_BROKEN' }, 'FLOTILLA_DEMO_BROKEN')).toBe(false);
    expect(isFlotillaError(null)).toBe(false);
    expect(isFlotillaError('FLOTILLA_DEMO_BROKEN')).toBe(false);
  });

  it('recognises an error from another copy of the package by its shared brand', () => {
    const foreign = Object.assign(new Error('from a duplicate install'), { code: 'FLOTILLA_X_Y' });
    Object.defineProperty(foreign, Symbol.for('flotilla.error'), { value: true });
    expect(isFlotillaError(foreign, 'FLOTILLA_X_Y')).toBe(true);
  });
});
