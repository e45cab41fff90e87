// The dockerd the Docker integration suites run against, on this machine only (a unix socket):
//
//   const docker = await acquireDocker();   // { socketPath, release }
//   ...
//   await docker.release();
//
// 1. FLOTILLA_DOCKER_HOST (a socket path, or unix://path) when set: used as it is.
// 2. /var/run/docker.sock when a dockerd answers there: used, never stopped.
// 3. Otherwise a dockerd of our own, started as root with its data root, exec root and socket
//    under FLOTILLA_DOCKERD_DIR (default /tmp/flotilla-dockerd): one daemon for every suite that
//    runs at the same time (test files run in parallel workers, and two daemons would fight over
//    the docker0 bridge and iptables), counted by pid files under <dir>/users; the last user to
//    release it stops it. Its data root is kept between runs as a cache (the stack image is not
//    built again); delete the directory to start afresh.
//
// When dockerd is missing and we are root with apt-get, Debian's docker.io is installed (said
// on stdout); otherwise the error names the command to run. Storage: overlay2, else vfs when
// overlay2 cannot be mounted here (FLOTILLA_DOCKERD_STORAGE forces one).
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  statSync,
} from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';

export const DEFAULT_SOCKET = '/var/run/docker.sock';

export const DOCKERD_MISSING =
  'dockerd is not installed: install Debian package docker.io as root ' +
  '(apt-get update && apt-get install -y docker.io), or point FLOTILLA_DOCKER_HOST at the ' +
  'socket of a running dockerd';

/** Where the dockerd binary is, or undefined. */
export function findDockerd() {
  for (const candidate of ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd']) {
    if (existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v dockerd'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}

/**
 * Installs Debian packages with apt-get when we are root and apt-get exists, printing that it
 * does so. Returns whether it ran; throws with `missing` when it cannot or the install fails.
 *
 * @param {string[]} packages
 * @param {string} missing
 */
export function aptInstall(packages, missing) {
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (process.getuid?.() !== 0 || !hasApt) throw new Error(missing);
  console.log(`> apt-get install ${packages.join(' ')} (not installed; installing as root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  const install = spawnSync(
    'apt-get',
    ['install', '-y', '-q', '--no-install-recommends', ...packages],
    { stdio: 'inherit', env },
  );
  if (update.status !== 0 || install.status !== 0) {
    throw new Error(`apt-get install ${packages.join(' ')} failed. ${missing}`);
  }
  return true;
}

/** Whether a dockerd answers `GET /_ping` on a unix socket. */
export function pingDocker(socketPath, timeoutMs = 2000) {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) return resolve(false);
    const req = request(
      { socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A lock on <dir>/lock (a directory holding the owner's pid); stale locks of dead pids are broken. */
async function withLock(dir, fn) {
  const lock = join(dir, 'lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // being written, or being removed
      }
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs;
        } catch {
          return 0;
        }
      })();
      // No pid (the file missing, empty or garbage: its writer died between mkdir and write)
      // counts as dead once the lock is 10 s old; Number('') is 0, which alive() would accept.
      const known = Number.isInteger(owner) && owner > 0;
      if ((known && !alive(owner)) || (!known && age > 10_000)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${lock}`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function livingUsers(dir) {
  const users = join(dir, 'users');
  mkdirSync(users, { recursive: true });
  const out = [];
  for (const name of readdirSync(users)) {
    const pid = Number(name);
    if (Number.isInteger(pid) && alive(pid)) out.push(pid);
    else rmSync(join(users, name), { force: true });
  }
  return out;
}

function daemonPid(dir) {
  try {
    const pid = Number(readFileSync(join(dir, 'dockerd.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitAnswering(socketPath, pid, logFile, logStart, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pingDocker(socketPath, 1000)) return;
    if (pid !== undefined && !alive(pid)) break;
    await sleep(100);
  }
  const log = existsSync(logFile)
    ? readFileSync(logFile).subarray(logStart).toString().slice(-3000)
    : '';
  const err = new Error(`dockerd did not answer on ${socketPath} within ${timeoutMs} ms:\n${log}`);
  err.overlayFailed = /overlay/i.test(log) && /(not supported|failed|error)/i.test(log);
  throw err;
}

async function launch(dir, storageDriver, extraArgs = []) {
  let bin = findDockerd();
  if (bin === undefined) {
    aptInstall(['docker.io'], DOCKERD_MISSING);
    bin = findDockerd();
    if (bin === undefined) throw new Error(DOCKERD_MISSING);
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      `dockerd must run as root and no dockerd answers on ${DEFAULT_SOCKET}: start one ` +
        `(sudo systemctl start docker) or set FLOTILLA_DOCKER_HOST to a dockerd socket`,
    );
  }
  const socketPath = join(dir, 'docker.sock');
  const logFile = join(dir, 'dockerd.log');
  rmSync(socketPath, { force: true });
  // appended: a failed start's reasons stay readable after the next attempt
  const out = openSync(logFile, 'a');
  const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
  const child = spawn(
    bin,
    [
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'dockerd.pid'),
      '--host',
      `unix://${socketPath}`,
      '--storage-driver',
      storageDriver,
      // no registry is reachable; nothing of ours pulls, and no daemon-wide features are needed
      '--log-level',
      'warn',
      ...extraArgs,
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  child.unref();
  await waitAnswering(socketPath, child.pid, logFile, logStart, 60_000);
  return socketPath;
}

/** Stops the dockerd whose pid file is in `dir`, waiting (30 s, then SIGKILL) for its exit. */
async function stopDaemon(dir) {
  const pid = daemonPid(dir);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(50);
  rmSync(join(dir, 'docker.sock'), { force: true });
}

/**
 * Starts (or joins) the dockerd of our own in `dir` and counts this process as a user of it.
 * Two daemons at once on one host fight over docker0 and iptables: use one.
 *
 * @param {{ dir?: string, storageDriver?: string, extraArgs?: string[] }} [options]
 * @returns {Promise<{ socketPath: string, dir: string, started: boolean, pid: number | undefined, stop: () => Promise<void> }>}
 */
export async function startDockerd(options = {}) {
  const dir = options.dir ?? process.env.FLOTILLA_DOCKERD_DIR ?? '/tmp/flotilla-dockerd';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const userFile = join(dir, 'users', String(process.pid));
  let started = false;
  const socketPath = await withLock(dir, async () => {
    livingUsers(dir);
    const sock = join(dir, 'docker.sock');
    if (daemonPid(dir) !== undefined && (await pingDocker(sock))) {
      writeFileSync(userFile, '');
      return sock;
    }
    await stopDaemon(dir); // a daemon that no longer answers
    const forced = options.storageDriver ?? process.env.FLOTILLA_DOCKERD_STORAGE;
    let s;
    try {
      s = await launch(dir, forced ?? 'overlay2', options.extraArgs);
    } catch (err) {
      // only when overlay itself failed: a data root with overlay2 images must not go vfs
      if (forced !== undefined || !err.overlayFailed) throw err;
      // overlay2 cannot be mounted in some sandboxes (overlay on overlay): vfs copies instead
      await stopDaemon(dir);
      console.log(`> dockerd: overlay2 failed, trying --storage-driver vfs`);
      s = await launch(dir, 'vfs', options.extraArgs);
    }
    started = true;
    writeFileSync(userFile, '');
    return s;
  });
  let stopped;
  return {
    socketPath,
    dir,
    started,
    /** The daemon's pid, while it runs. */
    get pid() {
      return daemonPid(dir);
    },
    stop: () =>
      (stopped ??= withLock(dir, async () => {
        rmSync(userFile, { force: true });
        if (livingUsers(dir).length === 0) await stopDaemon(dir);
      })),
  };
}

/**
 * The dockerd to run against (see the top of this file). `release()` stops what was started
 * for us when no other process uses it, and leaves the rest alone.
 *
 * @returns {Promise<{ socketPath: string, source: 'env' | 'system' | 'own', release: () => Promise<void> }>}
 */
export async function acquireDocker() {
  const fromEnv = process.env.FLOTILLA_DOCKER_HOST;
  if (fromEnv) {
    const socketPath = fromEnv.replace(/^unix:\/\//, '');
    if (!(await pingDocker(socketPath))) {
      throw new Error(`FLOTILLA_DOCKER_HOST=${fromEnv}: no dockerd answers there`);
    }
    return { socketPath, source: 'env', release: () => Promise.resolve() };
  }
  if (await pingDocker(DEFAULT_SOCKET)) {
    return { socketPath: DEFAULT_SOCKET, source: 'system', release: () => Promise.resolve() };
  }
  const own = await startDockerd();
  return { socketPath: own.socketPath, source: 'own', release: own.stop };
}
