// Benchmark backend: one Node http server on 127.0.0.1, port printed on stdout.
// GET / -> small JSON; /1k -> 1 KiB; /1m -> 1 MiB; POST echoes the body length.
import http from 'node:http';

const small = Buffer.from('{"hello":"world"}');
const k1 = Buffer.alloc(1024, 'a');
const m1 = Buffer.alloc(1024 * 1024, 'b');
const server = http.createServer((req, res) => {
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => (n += c.length));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(`{"received":${n}}`);
    });
    return;
  }
  const body = req.url === '/1k' ? k1 : req.url === '/1m' ? m1 : small;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', body.length);
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
