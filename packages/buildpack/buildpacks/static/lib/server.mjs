// The static buildpack's server: serves the app's files on $PORT (on $HOST, default all
// interfaces) with node alone. static.json may set "root" (a directory of the app, default the
// app itself) and "clean_urls" (serve /about from about.html). Dotfiles and anything outside
// the root, also through symlinks, are never served; 404.html in the root is the not-found page.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const app = process.cwd();
let config = {};
try {
  config = JSON.parse(fs.readFileSync(path.join(app, 'static.json'), 'utf8'));
} catch (err) {
  if (err.code !== 'ENOENT') {
    console.error(`static.json: ${err.message}`);
    process.exit(1);
  }
}
const root = fs.realpathSync(
  path.resolve(app, typeof config.root === 'string' ? config.root : '.'),
);
const realApp = fs.realpathSync(app);
if (root !== realApp && !root.startsWith(realApp + path.sep)) {
  console.error(`static.json: root ${JSON.stringify(config.root)} is outside the app`);
  process.exit(1);
}
const cleanUrls = config.clean_urls === true;
const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('PORT is not set to a port number; the platform sets it');
  process.exit(1);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.xml': 'application/xml',
  '.pdf': 'application/pdf',
};

/** The real path of a regular file under root for a URL path, or undefined. */
function find(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const parts = decoded.split('/').filter((p) => p !== '');
  if (parts.some((p) => p.startsWith('.'))) return undefined;
  const candidates = [];
  const base = path.join(root, ...parts);
  if (decoded.endsWith('/') || parts.length === 0) candidates.push(path.join(base, 'index.html'));
  else {
    candidates.push(base, path.join(base, 'index.html'));
    if (cleanUrls) candidates.push(`${base}.html`);
  }
  for (const file of candidates) {
    try {
      const real = fs.realpathSync(file);
      if (real !== root && !real.startsWith(root + path.sep)) continue;
      if (fs.statSync(real).isFile()) return real;
    } catch {
      // not there
    }
  }
  return undefined;
}

function send(req, res, status, file) {
  const st = fs.statSync(file);
  res.writeHead(status, {
    'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': st.size,
    'x-content-type-options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  fs.createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    res.end('method not allowed\n');
    return;
  }
  const urlPath = (req.url ?? '/').split('?')[0] ?? '/';
  const file = find(urlPath);
  if (file !== undefined) {
    send(req, res, 200, file);
    return;
  }
  const notFound = find('/404.html');
  if (notFound !== undefined) {
    send(req, res, 404, notFound);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

server.listen(port, process.env.HOST || undefined, () => {
  console.log(`static server on port ${server.address().port}, serving ${root}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
