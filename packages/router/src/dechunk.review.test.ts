// Hostile review of e51231f/49d87aa through real sockets: a backend that writes a second
// response right behind the last chunk of a chunked one (a response-splitting attempt). The
// client of the first gets its data only; no other request ever sees the smuggled bytes, and
// the backend connection they came on is not reused.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, must, raw } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

const SMUGGLED = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: 1\r\n\r\nEVIL!';

describe('a second response hidden behind the last chunk', () => {
  for (const version of ['1.0', '1.1']) {
    it(`is dropped with its connection (HTTP/${version} client first)`, async () => {
      let requests = 0;
      const backend = await h.rawBackend('split', 'split-raw', (s) => {
        s.on('data', () => {
          requests++;
          if (requests === 1)
            s.write(
              'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\ngood\r\n' +
                `2\r\n!!\r\n0\r\nX-T: 1\r\n\r\n${SMUGGLED}`,
            );
          else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        });
      });
      const router = h.router();
      await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'split' });
      const port = must((await router.listen({ http: { port: 0 } })).http).port;
      const first = await raw(
        port,
        `GET /a HTTP/${version}\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n`,
      );
      const body = first.slice(first.indexOf('\r\n\r\n') + 4);
      if (version === '1.0') expect(body).toBe('good!!');
      else expect(body).toBe('4;x=1\r\ngood\r\n2\r\n!!\r\n0\r\nX-T: 1\r\n\r\n');
      expect(first).not.toContain('EVIL');
      expect(first).not.toContain('X-Smuggled');
      for (let i = 0; i < 3; i++) {
        const next = await raw(
          port,
          'GET /b HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n',
        );
        expect(next).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(next.endsWith('\r\n\r\nok')).toBe(true);
        expect(next).not.toContain('EVIL');
      }
      // The connection that carried the extra bytes was closed: the next requests came on
      // another (which is then reused).
      expect(backend.connections).toBe(2);
      expect(requests).toBe(4);
    });
  }
});
