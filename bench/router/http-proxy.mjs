// Benchmark proxy: node-http-proxy with a keep-alive agent. argv: backendPort [certDir].
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import httpProxy from 'http-proxy';

const [backendPort, certDir] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({
  target: `http://127.0.0.1:${backendPort}`,
  agent,
  xfwd: true,
});
// node-http-proxy leaves the upstream request open when its client goes away mid-response (wrk
// closing its connections at the end of a run with 1 MiB responses in flight): the paused
// upstream socket never goes back to the agent, and after five runs all 256 were held and it
// answered nothing. Abort it, as nginx and @flotilla/router do.
proxy.on('proxyReq', (proxyReq, req, res) => {
  res.on('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });
});
proxy.on('error', (err, req, res) => {
  res.writeHead?.(502);
  res.end?.();
});
const handler = (req, res) => proxy.web(req, res);
const server = http.createServer(handler);
server.keepAliveTimeout = 65_000;
const ports = {};
await new Promise((r) => server.listen(0, '127.0.0.1', r));
ports.http = server.address().port;
if (certDir) {
  const tls = https.createServer(
    { cert: readFileSync(`${certDir}/cert.pem`), key: readFileSync(`${certDir}/key.pem`) },
    handler,
  );
  tls.keepAliveTimeout = 65_000;
  await new Promise((r) => tls.listen(0, '127.0.0.1', r));
  ports.https = tls.address().port;
}
console.log(JSON.stringify(ports));
