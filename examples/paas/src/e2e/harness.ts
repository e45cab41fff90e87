// End-to-end harness: a real `flotilla server` process on ephemeral loopback ports with a temp
// data directory, the real CLI, real git. Everything started here is stopped by `stop()`,
// also when a test failed (call it from afterAll / afterEach).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request, type Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { etcdEndpoints, uniquePrefix } from '../../../../test/support/etcd.js';
import { claimPortSlot, SLOT_SIZE } from '../../../../test/support/port-slots.js';

/** The compiled CLI. */
export const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** The sample apps. */
export const APPS = fileURLToPath(new URL('../../../apps/', import.meta.url));

/** A running server. */
export interface TestServer {
  readonly apiUrl: string;
  readonly routerUrl: string;
  readonly routerPort: number;
  readonly token: string;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** Everything the server wrote to stdout and stderr. */
  readonly output: () => string;
  /** Environment for the CLI and git: FLOTILLA_URL, FLOTILLA_TOKEN, a HOME of its own. */
  readonly env: NodeJS.ProcessEnv;
  /** Stops the server (SIGTERM, then SIGKILL), and every job it left. */
  stop(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartOptions {
  /** Extra flags. */
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Reuse a data directory (a restart). */
  readonly dataDir?: string;
  /** The subcommand (`server`, `host`). */
  readonly command?: string;
}

const pids = new Set<number>();

/** Starts `flotilla server` and resolves once it printed its banner. */
export async function startServer(o: StartOptions = {}): Promise<TestServer> {
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), 'flotilla-e2e-')));
  const home = join(dataDir, 'home');
  // Job ports: below the kernel's ephemeral range (32768-), where the API's and router's port 0
  // land, and a range no other server of any run on this machine holds (suites run in parallel
  // workers, and the host agent hands out a port without checking that it is free: a dyno of
  // one suite once answered another suite's router). The slots are shared with every other
  // suite that runs host agents (test/support/port-slots.ts).
  const slot = claimPortSlot();
  const base = slot.from;
  const last = base + SLOT_SIZE - 1;
  const command = o.command ?? 'server';
  const ports =
    {
      server: ['--api-port', '0', '--router-port', '0', '--job-ports', `${base}-${last}`],
      host: ['--api-port', '0', '--job-ports', `${base}-${last}`],
      router: ['--router-port', '0'],
    }[command] ?? [];
  const child = spawn(
    process.execPath,
    [MAIN, command, '--data-dir', dataDir, ...ports, '--log-level', 'warn', ...(o.args ?? [])],
    {
      env: { ...process.env, FLOTILLA_TOKEN: '', FLOTILLA_DATA_DIR: '', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  if (child.pid !== undefined) pids.add(child.pid);
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  let ready = false;
  const banner = await new Promise<Record<string, string>>((resolve, reject) => {
    const fields: Record<string, string> = {};
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      output += line + '\n';
      const m = /^\s+(API|router|token)\s+(\S+)/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) fields[m[1]] = m[2];
      // The banner ends with the data line (then, on a server, how to log in).
      if (/^\s+data\s/.test(line)) {
        ready = true;
        resolve(fields);
      }
    });
    child.once('exit', (code) => {
      if (ready) return;
      slot.release();
      // A data directory made here is removed with the failed start (the caller gets no stop()).
      void (o.dataDir === undefined ? rm(dataDir, { recursive: true, force: true }) : undefined);
      reject(new Error(`flotilla server exited (${code}) before it was ready:\n${output}`));
    });
  });
  child.stdout.on('data', (s: Buffer) => (output += s.toString()));
  const apiUrl = banner.API ?? '';
  const routerUrl = (banner.router ?? 'http://localhost:0').replace('<app>.', '');
  const token =
    o.env?.FLOTILLA_TOKEN ||
    (await readFile(join(dataDir, 'token'), 'utf8').catch(() => '')).trim();
  const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    FLOTILLA_URL: apiUrl,
    FLOTILLA_TOKEN: token,
    FLOTILLA_DATA_DIR: '',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'e2e',
    GIT_AUTHOR_EMAIL: 'e2e@flotilla.test',
    GIT_COMMITTER_NAME: 'e2e',
    GIT_COMMITTER_EMAIL: 'e2e@flotilla.test',
    GIT_CONFIG_NOSYSTEM: '1',
  };
  let stopped: Promise<void> | undefined;
  return {
    apiUrl,
    routerUrl,
    routerPort: Number(new URL(routerUrl).port),
    token,
    dataDir,
    process: child,
    output: () => output,
    env,
    stop: () =>
      (stopped ??= stopProcess(child)
        .then(() => killJobs(dataDir))
        .finally(() => slot.release())),
  };
}

/** Whether a process runs (a zombie, killed and not yet reaped, does not). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after 15 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
  if (child.pid !== undefined) pids.delete(child.pid);
}

/**
 * Kills the process group of every job a server left in its data directory (the
 * ProcessDriver keeps them under `<data>/jobs/jobs/<id>/job.json`).
 */
export async function killJobs(dataDir: string): Promise<void> {
  for (const jobs of [join(dataDir, 'jobs', 'jobs'), join(dataDir, 'jobs')]) {
    for (const id of await readdir(jobs).catch(() => [])) {
      try {
        const rec = JSON.parse(await readFile(join(jobs, id, 'job.json'), 'utf8')) as {
          pid?: number;
        };
        if (typeof rec.pid === 'number') process.kill(-rec.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

/**
 * A `--store` URL on the test etcd under a fresh prefix named after `name`, so suites that
 * share one etcd never see each other's keys.
 */
export async function etcdStore(name: string): Promise<string> {
  const [endpoint] = await etcdEndpoints();
  const host = (endpoint ?? '').replace(/^https?:\/\//, '');
  return `etcd://${host}${uniquePrefix(name).replace(/\/$/, '')}`;
}

/** Removes a data directory. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** The result of a command. */
export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The raw stdout, with `encoding: 'buffer'`. */
  readonly stdoutBuffer: Buffer;
}

/** Runs a command, never rejecting for its exit status. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; encoding?: 'buffer' } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'buffer',
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({
          code,
          stdout: stdout.toString('utf8'),
          stderr: stderr.toString('utf8'),
          stdoutBuffer: stdout,
        });
      },
    );
  });
}

/** Runs the CLI against a server. */
export function cli(s: TestServer, args: readonly string[], cwd?: string): Promise<Run> {
  return run(process.execPath, [MAIN, ...args], {
    env: s.env,
    ...(cwd === undefined ? {} : { cwd }),
  });
}

/** Copies a sample app into a new git repository with one commit on main. */
export async function sampleRepo(s: TestServer, app: string): Promise<string> {
  const dir = await mkdtemp(join(s.dataDir, `src-${app}-`));
  await cp(join(APPS, app), dir, { recursive: true });
  await git(s, dir, 'init', '-q', '-b', 'main');
  await commitAll(s, dir, 'first');
  return dir;
}

/** `git add -A && git commit`. */
export async function commitAll(s: TestServer, dir: string, message: string): Promise<void> {
  await git(s, dir, 'add', '-A');
  await git(
    s,
    dir,
    '-c',
    'user.email=e2e@flotilla.test',
    '-c',
    'user.name=e2e',
    'commit',
    '-q',
    '-m',
    message,
  );
}

/** Runs git, failing on a non-zero exit. */
export async function git(s: TestServer, dir: string, ...args: string[]): Promise<Run> {
  const r = await run('git', args, { cwd: dir, env: s.env });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** An HTTP answer. */
export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** A GET through the router, as `http://<app>.localhost:<port><path>` (sent to 127.0.0.1). */
export function getApp(s: TestServer, app: string, path = '/', agent?: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: s.routerPort,
        path,
        headers: { host: `${app}.localhost:${s.routerPort}` },
        ...(agent === undefined ? {} : { agent }),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A JSON call to the API. */
export async function api<T>(
  s: TestServer,
  method: string,
  path: string,
  body?: unknown,
  token = s.token,
): Promise<{ status: number; body: T }> {
  const res = await fetch(s.apiUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

/**
 * Waits until `check` returns a value other than undefined, checking every 200 ms (the state
 * it waits for is another process's); fails with `what` and the last value after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The dynos of an app, as `ps --json` prints them. */
export interface DynoJson {
  id: string;
  name: string;
  type: string;
  state: string;
  release: string;
  host: string;
}

/** `flotilla ps --json`. */
export async function ps(s: TestServer, app: string): Promise<DynoJson[]> {
  const r = await cli(s, ['ps', '-a', app, '--json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as DynoJson[];
}

process.on('exit', () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});
