// Starts a throwaway etcd on loopback for tests and benchmarks: ports of its own, a fresh data
// directory, stopped (and the directory removed) afterwards. Uses Debian's etcd-server 3.4.
// etcd dies with the Node process that started it (SIGTERM, SIGINT, SIGKILL, process.exit()),
// through util-linux's `setpriv --pdeathsig` on Linux: a killed test run leaves none behind.
// (The kernel sends that signal when the thread that spawned etcd ends: started from a worker
// thread, etcd goes with the worker.)
//
//   const etcd = await startEtcd();     // { endpoint: 'http://127.0.0.1:PORT', ... }
//   await etcd.restart();               // same data dir and port: for restart tests
//   await etcd.restart('SIGKILL');      // the same after a crash
//   await etcd.stop();
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aptInstall } from './docker.mjs';

/** Where the etcd binary is, or undefined. */
export function findEtcd() {
  const fromEnv = process.env.FLOTILLA_ETCD_BIN;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  for (const candidate of ['/usr/bin/etcd', '/usr/local/bin/etcd']) {
    if (existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

/**
 * util-linux's setpriv, when it can set a parent-death signal, or undefined. etcd started
 * through `setpriv --pdeathsig SIGKILL` (which then execs it: same pid) is killed by the kernel
 * when the Node process that started it ends, however it ends: SIGTERM, SIGINT, SIGKILL, a
 * crash. No signal handler is needed here, so none swallows a signal's default exit.
 */
function findSetpriv() {
  if (setprivFound !== null) return setprivFound;
  if (process.platform !== 'linux') return (setprivFound = undefined);
  const help = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
  setprivFound = help.status === 0 && help.stdout.includes('--pdeathsig') ? 'setpriv' : undefined;
  return setprivFound;
}
/** findSetpriv's answer, looked up once per process (null: not yet). */
let setprivFound = null;

/**
 * Children alive now, and the data directories made here not yet removed: on a normal exit of
 * this process (process.exit(), an uncaught error) the children are killed (where setpriv is
 * missing too) and the directories removed. Death by a signal is setpriv's, and leaves them.
 */
const running = new Set();
const ownedDirs = new Set();
let exitHook = false;
function hookExit() {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const c of running) c.kill('SIGKILL');
    for (const dir of ownedDirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // a file etcd was writing as it died: the temp directory's cleaner takes it
      }
    }
  });
}
function track(child) {
  running.add(child);
  child.once('exit', () => running.delete(child));
  hookExit();
}

export const ETCD_MISSING =
  'etcd is not installed: install Debian packages etcd-server and etcd-client ' +
  '(apt-get install etcd-server etcd-client), or set FLOTILLA_ETCD_BIN to an etcd 3.4+ binary';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(endpoint, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`etcd exited with code ${child.exitCode}: ${last}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = await res.json();
      if (body.health === 'true') return;
      last = JSON.stringify(body);
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms: ${last}`);
}

/**
 * @param {{ dataDir?: string, clientPort?: number, peerPort?: number, timeoutMs?: number,
 *           extraArgs?: string[] }} [options]
 */
export async function startEtcd(options = {}) {
  let bin = findEtcd();
  if (!bin && !process.env.FLOTILLA_ETCD_BIN) {
    // root with apt-get: install Debian's etcd (printed); otherwise ETCD_MISSING names the command
    aptInstall(['etcd-server', 'etcd-client'], ETCD_MISSING);
    bin = findEtcd();
  }
  if (!bin && process.env.FLOTILLA_ETCD_BIN) {
    throw new Error(
      `FLOTILLA_ETCD_BIN=${process.env.FLOTILLA_ETCD_BIN}: no such file; point it at an etcd ` +
        `3.4+ binary, or unset it to use Debian's etcd-server (apt-get install etcd-server)`,
    );
  }
  if (!bin) throw new Error(ETCD_MISSING);
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'flotilla-etcd-'));
  const ownsDir = options.dataDir === undefined;
  if (ownsDir) {
    ownedDirs.add(dataDir);
    hookExit();
  }
  let clientPort = options.clientPort ?? (await freePort());
  let peerPort = options.peerPort ?? (await freePort());
  let endpoint = `http://127.0.0.1:${clientPort}`;
  let peer = `http://127.0.0.1:${peerPort}`;
  const argsNow = () => [
    '--name',
    'flotilla-test',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `flotilla-test=${peer}`,
    '--initial-cluster-state',
    'new',
    '--log-level',
    'error',
    '--logger',
    'zap',
    ...(options.extraArgs ?? []),
  ];
  let child;
  let stderr = '';
  const setpriv = findSetpriv();
  const launch = async () => {
    stderr = '';
    child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'SIGKILL', '--', bin, ...argsNow()], {
          stdio: ['ignore', 'ignore', 'pipe'],
        })
      : spawn(bin, argsNow(), { stdio: ['ignore', 'ignore', 'pipe'] });
    track(child);
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    // A binary that cannot be run: let waitHealthy see the exit instead of crashing the process.
    child.on('error', (err) => {
      stderr += `\n${err.message}`;
    });
    try {
      await waitHealthy(endpoint, child, options.timeoutMs ?? 20_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${err.message}\n${stderr}`);
    }
  };
  /** Whether halt('SIGSTOP') froze the child (resume() thaws it instead of starting another). */
  let frozen = false;
  const stopChild = (signal) =>
    new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
      // A frozen etcd acts on the signal only once thawed (SIGKILL needs no thaw, but harms none).
      if (frozen) {
        frozen = false;
        child.kill('SIGCONT');
      }
    });
  /**
   * launch(), again while a port is taken: a free port found here can be taken before etcd
   * binds it (any process's outgoing connection may get it as its local port, and the ports
   * are in the ephemeral range), and so can a restarted etcd's port while it was down. Ports
   * this function chose are chosen again (`movable`); given or kept ones are waited for.
   */
  const launchUntilBound = async (movable) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await launch();
        return;
      } catch (err) {
        if (attempt >= 5 || !/address already in use/.test(err.message)) throw err;
        if (movable) {
          if (options.clientPort === undefined) clientPort = await freePort();
          if (options.peerPort === undefined) peerPort = await freePort();
          endpoint = `http://127.0.0.1:${clientPort}`;
          peer = `http://127.0.0.1:${peerPort}`;
          // Nothing was written before the bind failed; start from an empty directory anyway.
          if (ownsDir) {
            rmSync(dataDir, { recursive: true, force: true });
            mkdirSync(dataDir, { recursive: true });
          }
        } else await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  };
  try {
    await launchUntilBound(true);
  } catch (err) {
    // Nothing will stop this etcd: the directory made for it goes now.
    if (ownsDir) rmSync(dataDir, { recursive: true, force: true });
    ownedDirs.delete(dataDir);
    throw err;
  }
  return {
    endpoint,
    dataDir,
    clientPort,
    peerPort,
    get pid() {
      return child.pid;
    },
    /**
     * Stops etcd and starts it again on the same port and data: with SIGTERM (the default) it
     * shuts down cleanly; with SIGKILL it dies as in a crash, keeping only what it had synced.
     */
    async restart(signal = 'SIGTERM') {
      await stopChild(signal);
      await launchUntilBound(false);
    },
    /** Stops etcd without removing its data (for restart tests). */
    async halt(signal = 'SIGTERM') {
      // SIGSTOP freezes etcd without ending it: there is no exit to wait for.
      if (signal === 'SIGSTOP') {
        frozen = true;
        child.kill(signal);
      } else await stopChild(signal);
    },
    /** Starts it again after halt(): thaws a frozen one (SIGCONT), relaunches a stopped one. */
    async resume() {
      if (frozen) {
        frozen = false;
        child.kill('SIGCONT');
        await waitHealthy(endpoint, child, options.timeoutMs ?? 20_000);
      } else await launchUntilBound(false);
    },
    /** Stops etcd and removes its data directory if it made it. */
    async stop() {
      await stopChild('SIGTERM');
      if (ownsDir) rmSync(dataDir, { recursive: true, force: true });
      ownedDirs.delete(dataDir);
    },
  };
}

/**
 * The etcd to run against: the one FLOTILLA_ETCD_ENDPOINTS names, or a throwaway one started
 * here (with `options`). `release()` stops what was started here and leaves the rest alone.
 *
 * @param {Parameters<typeof startEtcd>[0]} [options]
 * @returns {Promise<{ endpoints: string[], release: () => Promise<void> }>}
 */
export async function acquireEtcd(options) {
  const fromEnv = process.env.FLOTILLA_ETCD_ENDPOINTS;
  if (fromEnv) return { endpoints: fromEnv.split(','), release: () => Promise.resolve() };
  const etcd = await startEtcd(options);
  return { endpoints: [etcd.endpoint], release: () => etcd.stop() };
}
