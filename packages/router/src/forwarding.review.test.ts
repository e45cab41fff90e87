// Hostile review of 13c3c90: a client's X-Real-IP, Forwarded, X-Forwarded-Host... are dropped.
// Tried: names in any case, each sent twice, on the second request of a keep-alive connection
// (pipelined), over HTTP/1.0, and over HTTP/2 with repeated fields.
import http2 from 'node:http2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { selfSignedCert } from './test-support/cert.js';
import { Harness, must, raw } from './test-support/harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.close();
});

/** The fields a client may not set (DROPPED_FROM_CLIENT), lower-case. */
const DROPPED = [
  'x-real-ip',
  'forwarded',
  'x-forwarded-host',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-forwarded-prefix',
  'client-ip',
  'true-client-ip',
  'x-forwarded-protocol',
  'x-scheme',
  'x-client-ip',
  // Replace the request path in some backends (IIS, Symfony, auth services), past the route.
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-forwarded-uri',
];

/** `name` in a few spellings: as given, upper, and alternating case. */
function spellings(name: string): string[] {
  const alt = [...name].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('');
  return [name, name.toUpperCase(), alt];
}

/** A backend that answers with the request's header fields, as [lower-case name, value] pairs. */
async function echoBackend(service: string): Promise<void> {
  await h.backend(service, service, (req, res) => {
    const pairs: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      pairs.push([must(req.rawHeaders[i]).toLowerCase(), must(req.rawHeaders[i + 1])]);
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(pairs));
  });
}

/** The JSON bodies of the responses in `text`, in order (one without length: to the end). */
function bodies(text: string): [string, string][][] {
  const out: [string, string][][] = [];
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) return out;
    const head = text.slice(at, end);
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    const len = cl === undefined ? text.length - end - 4 : Number(cl);
    out.push(JSON.parse(text.slice(end + 4, end + 4 + len)) as [string, string][]);
    at = end + 4 + len;
  }
}

const forgedLines = DROPPED.flatMap((n) => spellings(n).map((s) => `${s}: 6.6.6.6\r\n`)).join('');

describe('forwarded headers a client cannot forge, in any spelling', () => {
  it('HTTP/1.1: any case, repeated, on both pipelined requests of a connection; HTTP/1.0 too', async () => {
    await echoBackend('echo');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'echo' });
    const port = must((await router.listen({ http: { port: 0 } })).http).port;
    const req = (last: boolean): string =>
      `GET / HTTP/1.1\r\nhOsT: demo.localhost\r\n${forgedLines}X-Forwarded-PROTO: https\r\n` +
      `x-FORWARDED-for: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    const text = await raw(port, req(false) + req(true));
    const one = await raw(port, `GET / HTTP/1.0\r\nHost: demo.localhost\r\n${forgedLines}\r\n`);
    const all = [...bodies(text), ...bodies(one)];
    expect(all).toHaveLength(3);
    for (const pairs of all) {
      for (const name of DROPPED) expect(pairs.filter((p) => p[0] === name)).toEqual([]);
      expect(pairs.filter((p) => p[0] === 'x-forwarded-proto')).toEqual([
        ['x-forwarded-proto', 'http'],
      ]);
    }
    // Both client entries stay, in order, before the address the router saw.
    expect(all[0]?.filter((p) => p[0] === 'x-forwarded-for')).toEqual([
      ['x-forwarded-for', '6.6.6.6, 7.7.7.7, 127.0.0.1'],
    ]);
  });

  it('HTTP/2: repeated fields', async () => {
    const tlsCert = selfSignedCert('demo.localhost');
    await echoBackend('echo2');
    const router = h.router();
    await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'echo2' });
    await router.setCertificate({
      domain: 'demo.localhost',
      ...tlsCert,
    });
    const port = must((await router.listen({ https: { port: 0 } })).https).port;
    const client = http2.connect(`https://127.0.0.1:${port}`, {
      servername: 'demo.localhost',
      rejectUnauthorized: false,
    });
    client.on('error', () => undefined); // a session reset at the router's close; requests see theirs
    h.defer(() => client.close());
    const headers: http2.OutgoingHttpHeaders = { ':authority': 'demo.localhost', ':path': '/' };
    for (const n of DROPPED) headers[n] = ['6.6.6.6', '7.7.7.7'];
    headers['x-forwarded-proto'] = ['http', 'ws'];
    const body = await new Promise<string>((resolve, reject) => {
      const r = client.request(headers);
      let out = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (out += d));
      r.on('end', () => resolve(out));
      r.on('error', reject);
      r.end();
    });
    const pairs = JSON.parse(body) as [string, string][];
    for (const name of DROPPED) expect(pairs.filter((p) => p[0] === name)).toEqual([]);
    expect(pairs.filter((p) => p[0] === 'x-forwarded-proto')).toEqual([
      ['x-forwarded-proto', 'https'],
    ]);
  });
});
