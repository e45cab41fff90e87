// A Node web app with no dependencies. It answers with the MESSAGE config var, says which
// dyno and release answered, logs each request, and stops gracefully on SIGTERM.
const http = require('node:http');

const port = Number(process.env.PORT || 5000);
const message = process.env.MESSAGE || 'Hello from Flotilla';

const server = http.createServer((req, res) => {
  if (req.url === '/pid') {
    res.end(String(process.pid));
    return;
  }
  const body = JSON.stringify({
    message,
    dyno: process.env.DYNO,
    release: process.env.FLOTILLA_RELEASE,
    path: req.url,
  });
  console.log(`${req.method} ${req.url} 200 (${process.env.DYNO})`);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body + '\n');
});

server.listen(port, () => console.log(`listening on ${port} as ${process.env.DYNO}`));

process.on('SIGTERM', () => {
  console.log('SIGTERM: finishing requests in flight');
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
