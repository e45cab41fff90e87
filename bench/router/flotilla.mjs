// Benchmark proxy: @flotilla/router on MemoryStore, routing demo.localhost to the backend.
// argv: backendPort [certDir]; prints {"http":port,"https":port} on stdout.
import { readFileSync } from 'node:fs';
import { Discovery } from '@flotilla/discovery';
import { Router } from '@flotilla/router';
import { MemoryStore } from '@flotilla/store';

const [backendPort, certDir] = process.argv.slice(2);
const store = new MemoryStore();
const discovery = new Discovery({ store });
await discovery.register({
  service: 'bench',
  addr: `127.0.0.1:${backendPort}`,
  ready: true,
  ttlMs: 600_000,
});
const router = new Router({ store, discovery });
await router.setRoute({ type: 'http', domain: 'demo.localhost', service: 'bench' });
if (certDir) {
  await router.setCertificate({
    domain: '*',
    cert: readFileSync(`${certDir}/cert.pem`, 'utf8'),
    key: readFileSync(`${certDir}/key.pem`, 'utf8'),
  });
}
const out = await router.listen({
  http: { port: 0, host: '127.0.0.1' },
  ...(certDir ? { https: { port: 0, host: '127.0.0.1' } } : {}),
});
console.log(JSON.stringify({ http: out.http.port, https: out.https?.port }));
process.on('SIGTERM', () => router.close().then(() => process.exit(0)));
