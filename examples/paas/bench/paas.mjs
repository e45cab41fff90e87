#!/usr/bin/env node
// Figures of the reference PaaS, printed as JSON:
//   - push-to-serving time with a warm build cache (git push start to the router serving the
//     new commit), over --pushes pushes of examples/apps/node;
//   - failed requests across a deploy under continuous load (--clients keep-alive clients);
//   - memory (RSS) of the idle server: just started, and with the app deployed.
//
//   node examples/paas/bench/paas.mjs [--pushes 5] [--clients 8]
//
// Starts its own `flotilla server` (after `npx tsc -b examples/paas`) on ephemeral loopback
// ports with a temporary data directory, and stops it and its jobs at the end.
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { pushes: { type: 'string', default: '5' }, clients: { type: 'string', default: '8' } },
});
const PUSHES = Number(values.pushes);
const CLIENTS = Number(values.clients);
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../apps/node', import.meta.url));
const app = 'bench';

const sh = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 64 << 20, ...opts }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stdout, stderr })) : resolve({ stdout, stderr }),
    ),
  );

const rssMiB = async (pid) => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 102.4) / 10;
};

const dataDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-'));
const server = spawn(
  process.execPath,
  [
    MAIN,
    'server',
    '--data-dir',
    dataDir,
    '--api-port',
    '0',
    '--router-port',
    '0',
    '--job-ports',
    '24000-24099',
    '--stop-jobs',
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLOTILLA_TOKEN: '' } },
);
const banner = await new Promise((resolve, reject) => {
  const f = {};
  createInterface({ input: server.stdout }).on('line', (line) => {
    const m = /^\s+(API|router)\s+(\S+)/.exec(line);
    if (m) f[m[1]] = m[2];
    if (/^\s+data\s/.test(line)) resolve(f);
  });
  server.once('exit', (code) => reject(new Error(`server exited ${code}`)));
});
server.stdout.resume();
const apiUrl = banner.API;
const routerPort = Number(new URL(banner.router.replace('<app>.', '')).port);
const token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
const env = {
  ...process.env,
  HOME: dataDir,
  FLOTILLA_URL: apiUrl,
  FLOTILLA_TOKEN: token,
  GIT_TERMINAL_PROMPT: '0',
};

const get = (agent) =>
  new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: routerPort,
        path: '/',
        agent,
        headers: { host: `${app}.localhost:${routerPort}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });

const result = { pushes: PUSHES, clients: CLIENTS };
try {
  // Idle right after start: nothing deployed, nothing asked.
  await new Promise((r) => setTimeout(r, 2000));
  result.idleRssMiB = await rssMiB(server.pid);

  const repo = await mkdtemp(join(dataDir, 'src-'));
  await cp(SAMPLE, repo, { recursive: true });
  const git = (...args) => sh('git', args, { cwd: repo, env });
  await git('init', '-q', '-b', 'main');
  const commit = async (n) => {
    await writeFile(join(repo, 'Procfile'), `web: MESSAGE=push-${n} node server.js\n`);
    await git('add', '-A');
    await git('-c', 'user.email=b@b', '-c', 'user.name=b', 'commit', '-q', '-m', `push ${n}`);
  };
  await sh(process.execPath, [MAIN, 'create', app], { cwd: repo, env });

  const agent = new Agent({ keepAlive: true });
  const pushAndServe = async (n) => {
    await commit(n);
    const t0 = performance.now();
    await git('push', '-q', 'flotilla', 'main');
    for (;;) {
      const r = await get(agent).catch(() => undefined);
      if (r?.status === 200 && JSON.parse(r.body).message === `push-${n}`) break;
    }
    return performance.now() - t0;
  };
  result.firstPushMs = Math.round(await pushAndServe(0)); // cold: first build, no cache
  const warm = [];
  for (let n = 1; n <= PUSHES; n++) warm.push(await pushAndServe(n));
  warm.sort((a, b) => a - b);
  result.warmPushToServingMs = {
    min: Math.round(warm[0]),
    median: Math.round(warm[Math.floor(warm.length / 2)]),
    max: Math.round(warm[warm.length - 1]),
  };

  // A deploy under continuous load.
  let ok = 0;
  let failed = 0;
  const errors = {};
  let loading = true;
  const loadAgent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const client = async () => {
    while (loading) {
      try {
        const r = await get(loadAgent);
        if (r.status === 200) ok++;
        else {
          failed++;
          errors[`HTTP ${r.status}`] = (errors[`HTTP ${r.status}`] ?? 0) + 1;
        }
      } catch (err) {
        failed++;
        errors[err.code ?? String(err)] = (errors[err.code ?? String(err)] ?? 0) + 1;
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);
  const t0 = performance.now();
  await pushAndServe(PUSHES + 1);
  await new Promise((r) => setTimeout(r, 1500)); // the old dyno's drain and stop, under load
  loading = false;
  await Promise.all(clients);
  result.deployUnderLoad = {
    requests: ok + failed,
    failed,
    errors,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  agent.destroy();
  loadAgent.destroy();

  await new Promise((r) => setTimeout(r, 3000));
  result.idleRssWithAppMiB = await rssMiB(server.pid);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  for (const id of await readdir(join(dataDir, 'jobs')).catch(() => [])) {
    try {
      process.kill(
        -JSON.parse(await readFile(join(dataDir, 'jobs', id, 'job.json'), 'utf8')).pid,
        'SIGKILL',
      );
    } catch {
      // gone
    }
  }
  await rm(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
