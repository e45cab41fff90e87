#!/usr/bin/env node
// Router data plane: @flotilla/router vs nginx (1 worker, upstream keepalive) vs
// node-http-proxy, in front of the same Node backend, in alternating runs of wrk.
// Prints one JSON object.
//
//   node bench/router.mjs [--duration 5] [--rounds 3] [--connections 50] [--no-tls] [--no-bodies]
//
// Installs wrk and nginx-light with apt-get when missing (saying so on stderr).
// Each proxy runs in a process of its own; the backend in another; wrk in another. Figures on
// a shared machine are noisy: compare the ratios of the same run. Each proxy's CPU time (its
// process and children, from /proc) is read around every wrk run and printed as CPU microseconds
// per request (cpu_us_per_req): far less sensitive to the machine's load than requests/s; the
// backend's too (backend_cpu_us_per_req), the whole machine's (machine_cpu_us_per_req: wrk,
// the kernel's network work and anything else running), and how many cores it kept busy
// (machine_busy_cores, from /proc/stat: at the core count, every process waits for CPU).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { machineBusySeconds, processTreeCpuSeconds } from './router/cpu.mjs';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const DURATION = arg('duration', 5);
const ROUNDS = arg('rounds', 3);
const CONNECTIONS = arg('connections', 50);
const TLS = !args.includes('--no-tls');
// --only small,body_1k: run only these scenarios; --proxies flotilla,nginx: only these proxies.
const list = (name) => {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--'))
    throw new Error(`--${name} needs a comma-separated list, e.g. --${name} a,b`);
  return value.split(',');
};
const ONLY = list('only');
const PROXIES = list('proxies');
// Extra node flags for the Node proxies (e.g. --node-flags=--cpu-prof,--cpu-prof-dir=/tmp/p).
const NODE_FLAGS = args
  .filter((a) => a.startsWith('--node-flags='))
  .flatMap((a) => a.slice('--node-flags='.length).split(','));
const BODIES = !args.includes('--no-bodies');
// --pin: every proxy on the last CPU, the backend and wrk on the others (taskset), the same for
// all three. Unpinned, the scheduler moves the four processes between CPUs; on a paravirtualised
// guest a wakeup across CPUs is costly, and which CPU each process lands on changed a proxy's
// CPU per request by up to 2x between rounds of the same run.
const PIN = args.includes('--pin');
const CPUS = availableParallelism();
const PROXY_CPUS = String(CPUS - 1);
const OTHER_CPUS = CPUS > 1 ? `0-${CPUS - 2}` : '0';
/** [command, args] run on `cpus` with taskset when --pin is given. */
const pinned = (cpus, command, argv) =>
  PIN ? ['taskset', ['-c', cpus, command, ...argv]] : [command, argv];
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

function ensureTools() {
  const missing = [];
  if (spawnSync('sh', ['-c', 'command -v wrk']).status !== 0) missing.push('wrk');
  if (spawnSync('sh', ['-c', 'command -v nginx || test -x /usr/sbin/nginx']).status !== 0)
    missing.push('nginx-light');
  if (missing.length === 0) return;
  process.stderr.write(`bench/router: installing ${missing.join(', ')} with apt-get\n`);
  execFileSync(
    'flock',
    [
      '/tmp/apt.lock',
      'sh',
      '-c',
      `apt-get install -y ${missing.join(' ')} || (apt-get update && apt-get install -y ${missing.join(' ')})`,
    ],
    { stdio: ['ignore', 2, 2] },
  );
}

const children = [];
/** How each child that ended did (by pid): a proxy gone mid-run fails the benchmark. */
const exited = new Map();
function track(child) {
  children.push(child);
  child.on('exit', (code, signal) => exited.set(child.pid, signal ?? `exit code ${code}`));
}
function startNode(script, argv, flags = [], cpus = PROXY_CPUS) {
  const child = spawn(...pinned(cpus, process.execPath, [...flags, script, ...argv]), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  track(child);
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => resolve({ pid: child.pid, info: JSON.parse(line) }));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

function freePort() {
  return new Promise((resolve) => {
    import('node:net').then(({ default: net }) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
  });
}

async function startNginx(dir, backendPort, certDir) {
  const httpPort = await freePort();
  const httpsPort = certDir ? await freePort() : undefined;
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${httpPort};
    ${certDir ? `listen 127.0.0.1:${httpsPort} ssl; ssl_certificate ${certDir}/cert.pem; ssl_certificate_key ${certDir}/key.pem;` : ''}
    keepalive_requests 100000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      # The headers @flotilla/router sets on every request (as a Heroku- or Deis-style nginx
      # router does), so that both proxies do the same job and the backend parses as much.
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Request-Start "t=$msec";
    }
  }
}`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  // daemon off: the master is this child, its one worker a child of it (both are counted).
  const child = spawn(
    ...pinned(PROXY_CPUS, '/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir]),
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  track(child);
  // wait until it accepts
  const net = (await import('node:net')).default;
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(httpPort, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid, http: httpPort, https: httpsPort };
}

let backendPid;
function wrk(url, extra = [], pid) {
  const cpu0 = pid === undefined ? undefined : processTreeCpuSeconds(pid);
  const backend0 = processTreeCpuSeconds(backendPid);
  const machine0 = machineBusySeconds();
  const t0 = performance.now();
  const out = execFileSync(
    ...pinned(OTHER_CPUS, 'wrk', [
      '-t1',
      `-c${CONNECTIONS}`,
      `-d${DURATION}s`,
      '--latency',
      '-H',
      'Host: demo.localhost',
      ...extra,
      url,
    ]),
    { encoding: 'utf8' },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const unit = (v, u) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[u] ?? 1);
  const lat = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? unit(m[1], m[2]) : NaN;
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
  const sockErr = /Socket errors: (.*)/.exec(out)?.[1];
  const cpu1 = pid === undefined ? undefined : processTreeCpuSeconds(pid);
  const backend1 = processTreeCpuSeconds(backendPid);
  const machine1 = machineBusySeconds();
  const wall = (performance.now() - t0) / 1000;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const perReq = (a, b) =>
    a === undefined || b === undefined || !(requests > 0) ? NaN : ((b - a) * 1e6) / requests;
  return {
    rps,
    cpu_us_per_req: perReq(cpu0, cpu1),
    backend_cpu_us_per_req: perReq(backend0, backend1),
    machine_cpu_us_per_req: perReq(machine0, machine1),
    machine_busy_cores:
      machine0 === undefined || machine1 === undefined ? NaN : (machine1 - machine0) / wall,
    p50_ms: lat(50),
    p99_ms: lat(99),
    non2xx: Number(errors),
    ...(sockErr ? { socket_errors: sockErr } : {}),
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
};
const round2 = (x) => Math.round(x * 100) / 100;

async function main() {
  ensureTools();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-router-'));
  try {
    let certDir;
    if (TLS) {
      certDir = dir;
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=demo.localhost',
        ],
        { stdio: 'ignore' },
      );
    }
    const backend = await startNode(here('./router/backend.mjs'), [], [], OTHER_CPUS);
    const backendPort = backend.info;
    backendPid = backend.pid;
    const node = async (script) => {
      const { pid, info } = await startNode(
        here(script),
        [String(backendPort), ...(certDir ? [certDir] : [])],
        NODE_FLAGS,
      );
      return { pid, ...info };
    };
    const wanted = (name) => PROXIES === undefined || PROXIES.includes(name);
    const proxies = {};
    if (wanted('flotilla')) proxies.flotilla = await node('./router/flotilla.mjs');
    if (wanted('nginx')) proxies.nginx = await startNginx(dir, backendPort, certDir);
    if (wanted('http-proxy')) proxies['http-proxy'] = await node('./router/http-proxy.mjs');
    const scenarios = [{ name: 'small', path: '/', scheme: 'http' }];
    if (BODIES) {
      scenarios.push(
        { name: 'body_1k', path: '/1k', scheme: 'http' },
        { name: 'body_1m', path: '/1m', scheme: 'http' },
      );
      scenarios.push({ name: 'post_1k', path: '/', scheme: 'http', post: 1024 });
    }
    if (TLS) scenarios.push({ name: 'tls_small', path: '/', scheme: 'https' });
    if (ONLY !== undefined)
      scenarios.splice(0, scenarios.length, ...scenarios.filter((s) => ONLY.includes(s.name)));
    // warm up each proxy
    for (const [, ports] of Object.entries(proxies))
      execFileSync(
        'wrk',
        ['-t1', '-c10', '-d1s', '-H', 'Host: demo.localhost', `http://127.0.0.1:${ports.http}/`],
        { stdio: 'ignore' },
      );
    const results = {};
    for (const sc of scenarios) {
      const runs = Object.fromEntries(Object.keys(proxies).map((name) => [name, []]));
      let luaFile;
      if (sc.post) {
        luaFile = join(dir, `post-${sc.post}.lua`);
        writeFileSync(
          luaFile,
          `wrk.method = "POST"\nwrk.body = string.rep("x", ${sc.post})\nwrk.headers["Content-Type"] = "text/plain"\n`,
        );
      }
      // Warm each proxy up on this scenario first (1 s, not counted): its first run was
      // otherwise the Node proxies' first pass through the scenario's code (a POST body, TLS),
      // and JIT compilation showed as a p99 of 10-20 ms in that run.
      for (const [, ports] of Object.entries(proxies)) {
        const port = ports[sc.scheme];
        if (port === undefined) continue;
        execFileSync(
          'wrk',
          [
            '-t1',
            `-c${CONNECTIONS}`,
            '-d1s',
            '-H',
            'Host: demo.localhost',
            ...(luaFile ? ['-s', luaFile] : []),
            `${sc.scheme}://127.0.0.1:${port}${sc.path}`,
          ],
          { stdio: 'ignore' },
        );
      }
      for (let r = 0; r < ROUNDS; r++) {
        const order = Object.keys(proxies);
        if (r % 2 === 1) order.reverse();
        for (const name of order) {
          const port = proxies[name][sc.scheme];
          if (port === undefined) continue;
          const run = wrk(
            `${sc.scheme}://127.0.0.1:${port}${sc.path}`,
            luaFile ? ['-s', luaFile] : [],
            proxies[name].pid,
          );
          // A proxy that died (or answers nothing) would otherwise be reported as 0 requests/s.
          const gone = exited.get(proxies[name].pid);
          if (gone !== undefined || !(run.rps > 0))
            throw new Error(
              `${name} ${gone === undefined ? 'answered no request' : `ended (${gone})`} in round ${r + 1} of ${sc.name}${run.socket_errors ? ` (wrk: ${run.socket_errors})` : ''}: no figures for it; its output is above`,
            );
          runs[name].push(run);
        }
      }
      const summary = {};
      for (const [name, rs] of Object.entries(runs)) {
        if (rs.length === 0) continue;
        summary[name] = {
          rps: Math.round(median(rs.map((x) => x.rps))),
          cpu_us_per_req: Math.round(median(rs.map((x) => x.cpu_us_per_req)) * 10) / 10,
          backend_cpu_us_per_req:
            Math.round(median(rs.map((x) => x.backend_cpu_us_per_req)) * 10) / 10,
          machine_cpu_us_per_req:
            Math.round(median(rs.map((x) => x.machine_cpu_us_per_req)) * 10) / 10,
          machine_busy_cores: round2(median(rs.map((x) => x.machine_busy_cores))),
          p50_ms: round2(median(rs.map((x) => x.p50_ms))),
          p99_ms: round2(median(rs.map((x) => x.p99_ms))),
          non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
          runs: rs.map((x) => Math.round(x.rps)),
          cpu_runs: rs.map((x) => Math.round(x.cpu_us_per_req * 10) / 10),
        };
      }
      const f = summary.flotilla;
      // Each ratio whose two proxies ran (--proxies may leave one out).
      const ratio = (a, b) => (a === undefined || b === undefined ? undefined : round2(a / b));
      const n = summary.nginx;
      if (f !== undefined)
        summary.ratios = {
          rps_vs_nginx: ratio(f.rps, n?.rps),
          rps_vs_http_proxy: ratio(f.rps, summary['http-proxy']?.rps),
          p99_vs_nginx: ratio(f.p99_ms, n?.p99_ms),
          cpu_vs_nginx: ratio(f.cpu_us_per_req, n?.cpu_us_per_req),
        };
      results[sc.name] = summary;
    }
    console.log(
      JSON.stringify(
        {
          benchmark: 'router',
          duration_s: DURATION,
          rounds: ROUNDS,
          connections: CONNECTIONS,
          pinned: PIN ? { proxy_cpus: PROXY_CPUS, backend_and_wrk_cpus: OTHER_CPUS } : false,
          results,
        },
        null,
        2,
      ),
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  for (const c of children) c.kill('SIGKILL');
  console.error(err);
  process.exit(1);
});
