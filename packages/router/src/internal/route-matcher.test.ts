// Routes match the path as a backend reads it; a route whose own path is written with escapes
// or dot segments must still match the requests it names.
import { describe, expect, it } from 'vitest';
import type { StoredRoute } from '../route.js';
import { RouteMatcher } from './route-matcher.js';

const route = (path: string, service: string): StoredRoute => ({
  type: 'http',
  domain: 'demo.localhost',
  path,
  service,
  id: `demo.localhost${path}`,
});

describe('RouteMatcher', () => {
  it("matches a route whose path holds %XX escapes, by the request's decoded path", () => {
    const m = new RouteMatcher([
      route('/', 'site'),
      route('/a%20b', 'spaced'),
      route('/%7Euser', 'home'),
      route('/caf%C3%A9', 'cafe'),
    ]);
    const service = (target: string): string | undefined =>
      m.match('demo.localhost', target)?.service;
    expect(service('/a%20b')).toBe('spaced');
    expect(service('/a%20b/x?q=1')).toBe('spaced');
    expect(service('/~user/x')).toBe('home');
    expect(service('/%7euser')).toBe('home');
    expect(service('/caf%c3%a9/menu')).toBe('cafe');
    expect(service('/a%20bc')).toBe('site');
    // The route's metric label stays as the route was written.
    expect(m.match('demo.localhost', '/a%20b')?.label).toBe('demo.localhost/a%20b');
  });

  it('matches a route whose path has dot segments or doubled slashes as the path they name', () => {
    const m = new RouteMatcher([
      route('/', 'site'),
      route('/api//v1', 'v1'),
      route('/x/../admin', 'admin'),
    ]);
    expect(m.match('demo.localhost', '/api/v1/users')?.service).toBe('v1');
    expect(m.match('demo.localhost', '/admin')?.service).toBe('admin');
  });
  it('takes a Host with an empty port (RFC 3986: port = *DIGIT) as its name, and refuses what is no host', () => {
    const m = new RouteMatcher([route('/', 'site')]);
    for (const host of [
      'demo.localhost',
      'DEMO.localhost.',
      'demo.localhost:8080',
      'demo.localhost:',
    ])
      expect(m.match(host, '/')?.service, host).toBe('site');
    for (const host of ['demo.localhost:123456', 'x/.demo.localhost', 'demo.localhost:8a', ''])
      expect(m.match(host, '/'), host).toBeUndefined();
  });
});
