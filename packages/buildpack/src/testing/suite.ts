import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { extractSlug } from '@flotilla/slug';
import { build, type BuildOptions, type BuildResult } from '../build.js';
import type { BuildExecutor } from '../executor.js';

/** Options of {@link runBuildpackSuite}. */
export interface BuildpackSuiteOptions {
  /** Suite name, e.g. `'LocalExecutor'`. */
  readonly name: string;
  /** Makes a fresh executor for one test; the suite closes it. */
  readonly createExecutor: () => BuildExecutor | Promise<BuildExecutor>;
  /** `PATH` of the build steps, when the stack's tools are not on the default one. */
  readonly path?: string;
  /** How long one test may take, ms. Default 120,000 (the Node.js builds run npm). */
  readonly timeoutMs?: number;
}

/** Writes the files of a tree: `{ 'bin/detect': '#!/usr/bin/env bash\n...' }`; `bin/*` executable. */
async function writeTree(dir: string, files: Record<string, string>): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    if (name.startsWith('bin/')) await chmod(path, 0o755);
  }
  return dir;
}

const bash = (body: string): string => `#!/usr/bin/env bash\n${body}\n`;

/** A port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** The pids of the processes on this machine whose command line is `sleep <seconds>`. */
async function sleepers(seconds: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const [program = '', arg] = cmdline.split('\0');
    if (arg === seconds && program.split('/').pop() === 'sleep') pids.push(Number(name));
  }
  return pids;
}

/** Whether `pid` is a live `sleep <seconds>` (not a zombie, not a pid reused since). */
async function sleeping(pid: number, seconds: string): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '' || / [ZX] /.test(stat.slice(stat.lastIndexOf(')')))) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0')[1] === seconds;
}

/** GET http://127.0.0.1:port/path: status and body. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error('expected the build to fail, and it succeeded');
}

/**
 * Runs the buildpack suite against an executor: detect passing and failing, compile reading
 * ENV_DIR and writing CACHE_DIR, the build environment, release YAML with and without legacy
 * `config_vars`, `export` between buildpacks, a failing compile with its output kept, abort and
 * timeout stopping everything a step started, a symlink out of the app refused, and the
 * bundled `nodejs`, `static` and `procfile` buildpacks (a built Node app started from its slug
 * answers HTTP), and an npm build script's `setsid` and plain background sleeps gone by pid
 * after an abort and a timeout. The fixture buildpacks are plain bash scripts using coreutils
 * only. The steps' processes must show in this machine's `/proc` (a local dockerd for a
 * container executor): the suite finds the sleeps there by their command line.
 *
 * Call it inside a vitest test file.
 *
 * @example
 * ```ts
 * import { LocalExecutor } from '@flotilla/buildpack';
 * import { runBuildpackSuite } from '@flotilla/buildpack/testing';
 *
 * runBuildpackSuite({ name: 'LocalExecutor', createExecutor: () => new LocalExecutor() });
 * ```
 */
export function runBuildpackSuite(options: BuildpackSuiteOptions): void {
  const testTimeout = options.timeoutMs ?? 120_000;

  describe(`buildpack suite: ${options.name}`, { timeout: testTimeout }, () => {
    let root: string;
    let executor: BuildExecutor;
    let children: ChildProcess[];

    beforeEach(async () => {
      root = await mkdtemp(join(tmpdir(), 'flotilla-bp-suite-'));
      await mkdir(join(root, 'work'));
      executor = await options.createExecutor();
      children = [];
    });

    afterEach(async () => {
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      await executor.close();
      await rm(root, { recursive: true, force: true });
    });

    const app = (files: Record<string, string>, name = 'app'): Promise<string> =>
      writeTree(join(root, name), files);
    const pack = (name: string, files: Record<string, string>): Promise<string> =>
      writeTree(join(root, 'packs', name), files);
    let slugs = 0;
    const run = (opts: Omit<BuildOptions, 'executor'>): Promise<BuildResult> =>
      build({
        executor,
        workDir: join(root, 'work'),
        slugPath: join(root, 'slugs', `${slugs++}.tgz`),
        ...(options.path === undefined ? {} : { path: options.path }),
        ...opts,
      });
    let extracted = 0;
    const extract = async (result: BuildResult): Promise<string> => {
      const dir = join(root, `extracted-${extracted++}`);
      await extractSlug(result.slug, dir, { expectedSha256: result.sha256 });
      return dir;
    };
    /** Starts a process type from an extracted slug as a host does; resolves once it prints `ready`. */
    const start = async (dir: string, command: string, port: number): Promise<void> => {
      const child = spawn(
        'bash',
        [
          '-c',
          'for f in .profile.d/*.sh; do [ -r "$f" ] && . "./$f"; done; eval "$1"',
          'web',
          command,
        ],
        {
          cwd: dir,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            PATH: process.env['PATH'] ?? '/usr/bin:/bin',
            PORT: String(port),
            HOST: '127.0.0.1',
            HOME: dir,
          },
        },
      );
      children.push(child);
      let seen = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => {
          seen += d.toString();
          if (/ready|static server on port/.test(seen)) resolve();
        });
        child.stderr?.on('data', (d: Buffer) => (seen += d.toString()));
        child.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${seen}`)));
      });
    };
    const lsWork = (): Promise<string[]> => readdir(join(root, 'work'));

    describe('detect', () => {
      it('builds with the first buildpack whose bin/detect accepts the app, and says so', async () => {
        const picky = await pack('picky', {
          'bin/detect': bash('[ -f "$1/picky.txt" ] && echo Picky'),
          'bin/compile': bash('echo picky compiled > "$1/who"'),
        });
        const eager = await pack('eager', {
          'bin/detect': bash('echo Eager; exit 0'),
          'bin/compile': bash('echo eager compiled > "$1/who"'),
        });
        const lines: string[] = [];
        const source = await app({ 'README.md': 'hello\n' });
        const result = await run({
          source,
          buildpacks: [picky, eager],
          onOutput: (l) => lines.push(l),
        });
        expect(result.buildpacks).toEqual([{ name: 'Eager', url: eager }]);
        expect(lines).toContain('-----> Eager app detected');
        expect(result.output).toContain('-----> Eager app detected');
        const dir = await extract(result);
        expect(await readFile(join(dir, 'who'), 'utf8')).toBe('eager compiled\n');
        expect(await readFile(join(dir, 'README.md'), 'utf8')).toBe('hello\n');
      });

      it('fails with FLOTILLA_BUILDPACK_NOT_DETECTED when none accepts the app, leaving nothing behind', async () => {
        const never = await pack('never', {
          'bin/detect': bash('echo "looking for foo.txt" >&2; exit 1'),
          'bin/compile': bash('exit 0'),
        });
        const err = await rejection(
          run({ source: await app({ 'x.txt': 'x' }), buildpacks: [never] }),
        );
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_NOT_DETECTED');
        expect(err['output']).toContain('looking for foo.txt');
        expect(await lsWork()).toEqual([]);
      });
    });

    describe('compile', () => {
      it('reads config vars from ENV_DIR and keeps CACHE_DIR between builds', async () => {
        const bp = await pack('env', {
          'bin/detect': bash('echo Env'),
          'bin/compile': bash(
            [
              'set -e',
              'mkdir -p "$1/envcopy"',
              'for f in "$3"/*; do cp "$f" "$1/envcopy/"; done',
              'echo run >> "$2/runs"',
              'cp "$2/runs" "$1/runs"',
              'echo "       greeting is $(cat "$3/GREETING")"',
            ].join('\n'),
          ),
        });
        const source = await app({ 'index.txt': 'x' });
        const cacheDir = join(root, 'cache');
        const env = {
          GREETING: 'hello world',
          MULTI: 'line one\nline two\n',
          QUOTE: `it's "$HOME"`,
        };
        const first = await run({ source, cacheDir, env, buildpacks: [bp] });
        expect(first.output).toContain('       greeting is hello world');
        const second = await run({ source, cacheDir, env, buildpacks: [bp] });
        const dir = await extract(second);
        for (const [key, value] of Object.entries(env)) {
          expect(await readFile(join(dir, 'envcopy', key), 'utf8')).toBe(value);
        }
        expect(await readFile(join(dir, 'runs'), 'utf8')).toBe('run\nrun\n');
      });

      it('runs with STACK, SOURCE_VERSION, REQUEST_ID and a writable HOME, and no config var in its environment', async () => {
        const bp = await pack('envvars', {
          'bin/detect': bash('echo Vars'),
          'bin/compile': bash(
            [
              'set -e',
              'touch "$HOME/.written"',
              'printf "%s\\n" "STACK=$STACK" "SOURCE_VERSION=$SOURCE_VERSION" "REQUEST_ID=$REQUEST_ID" "SECRET=${SECRET-unset}" > "$1/vars"',
            ].join('\n'),
          ),
        });
        const result = await run({
          source: await app({ 'a.txt': 'a' }),
          buildpacks: [bp],
          env: { SECRET: 's3cret' },
          stack: 'heroku-24',
          sourceVersion: '0123456789abcdef0123456789abcdef01234567',
          requestId: 'req-42',
        });
        const vars = await readFile(join(await extract(result), 'vars'), 'utf8');
        expect(vars).toBe(
          'STACK=heroku-24\nSOURCE_VERSION=0123456789abcdef0123456789abcdef01234567\nREQUEST_ID=req-42\nSECRET=unset\n',
        );
      });

      it('fails with FLOTILLA_BUILDPACK_COMPILE_FAILED, its exit status, and the output kept and streamed', async () => {
        const bp = await pack('failing', {
          'bin/detect': bash('echo Failing'),
          'bin/compile': bash(
            'echo "-----> Installing things"\necho "       no space left" >&2\nexit 3',
          ),
        });
        const lines: string[] = [];
        const err = await rejection(
          run({
            source: await app({ 'a.txt': 'a' }),
            buildpacks: [bp],
            onOutput: (l) => lines.push(l),
          }),
        );
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_COMPILE_FAILED');
        expect(err['exitCode']).toBe(3);
        // Both lines are kept; their order across stdout and stderr is not promised (a container
        // executor reads the two streams apart).
        expect(err['output']).toContain('-----> Installing things\n');
        expect(err['output']).toContain('       no space left\n');
        expect(lines).toContain('       no space left');
        expect(await lsWork()).toEqual([]);
      });
    });

    describe('release', () => {
      it('takes default_process_types and addons, the Procfile winning per type', async () => {
        const bp = await pack('rel', {
          'bin/detect': bash('echo Rel'),
          'bin/compile': bash('exit 0'),
          'bin/release': bash(
            "cat <<'YAML'\n---\naddons:\n  - heroku-postgresql\ndefault_process_types:\n  web: ./default-web\n  worker: ./default-worker\nYAML",
          ),
        });
        const result = await run({
          source: await app({ Procfile: 'web: ./my-web --port $PORT\n' }),
          buildpacks: [bp],
        });
        expect(result.processTypes).toEqual({
          web: './my-web --port $PORT',
          worker: './default-worker',
        });
        expect(result.addons).toEqual(['heroku-postgresql']);
        expect(result.configVars).toEqual({});
        const dir = await extract(result);
        await expect(readFile(join(dir, '.profile.d', '000_config_vars.sh'))).rejects.toThrow();
      });

      it('writes legacy config_vars as shell-quoted defaults that app config overrides', async () => {
        const nasty = `a 'b' "c" $HOME \`id\` } \\ ; end`;
        const bp = await pack('legacy', {
          'bin/detect': bash('echo Legacy'),
          'bin/compile': bash('exit 0'),
          'bin/release': bash(
            `cat <<'YAML'\nconfig_vars:\n  LANG: en_US.UTF-8\n  NASTY: ${JSON.stringify(nasty)}\n  OVERRIDDEN: default\nYAML`,
          ),
        });
        const result = await run({ source: await app({ 'a.txt': 'a' }), buildpacks: [bp] });
        expect(result.configVars).toEqual({
          LANG: 'en_US.UTF-8',
          NASTY: nasty,
          OVERRIDDEN: 'default',
        });
        const dir = await extract(result);
        const out = await new Promise<string>((resolve, reject) => {
          const child = spawn(
            'bash',
            [
              '-c',
              '. .profile.d/000_config_vars.sh; printf "%s|%s|%s" "$LANG" "$NASTY" "$OVERRIDDEN"',
            ],
            { cwd: dir, env: { PATH: '/usr/bin:/bin', OVERRIDDEN: 'mine', HOME: dir } },
          );
          let text = '';
          child.stdout.on('data', (d: Buffer) => (text += d.toString()));
          child.on('error', reject);
          child.on('close', () => resolve(text));
        });
        expect(out).toBe(`en_US.UTF-8|${nasty}|mine`);
      });

      it('fails with FLOTILLA_BUILDPACK_RELEASE_INVALID on YAML that is not the release format', async () => {
        const bp = await pack('badrel', {
          'bin/detect': bash('echo BadRel'),
          'bin/compile': bash('exit 0'),
          'bin/release': bash("echo 'default_process_types: [web, worker]'"),
        });
        const err = await rejection(run({ source: await app({ 'a.txt': 'a' }), buildpacks: [bp] }));
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_RELEASE_INVALID');
        expect(await lsWork()).toEqual([]);
      });
    });

    describe('multi-buildpack', () => {
      it('runs every buildpack of .buildpacks in order, sourcing each export before the next, using the last release', async () => {
        const first = await pack('first', {
          'bin/detect': bash('echo First'),
          'bin/compile': bash(
            [
              'set -e',
              'BP_DIR=$(cd "$(dirname "$0")/.." && pwd)',
              'mkdir -p "$1/.tools/bin"',
              'printf \'#!/usr/bin/env bash\\necho tool says hi\\n\' > "$1/.tools/bin/mytool"',
              'chmod +x "$1/.tools/bin/mytool"',
              'echo "export FROM_FIRST=\'set by first\'" > "$BP_DIR/export"',
              'echo "export PATH=\\"$1/.tools/bin:\\$PATH\\"" >> "$BP_DIR/export"',
            ].join('\n'),
          ),
          'bin/release': bash("echo 'default_process_types: { web: first-web }'"),
        });
        const second = await pack('second', {
          'bin/detect': bash('echo Second'),
          'bin/compile': bash(
            'set -e\necho "$FROM_FIRST" > "$1/from-first"\nmytool > "$1/tool-output"',
          ),
          'bin/release': bash("echo 'default_process_types: { web: second-web }'"),
        });
        const result = await run({
          source: await app({ '.buildpacks': `${first}\n# comment\n${second}\n` }),
        });
        expect(result.buildpacks).toEqual([
          { name: 'First', url: first },
          { name: 'Second', url: second },
        ]);
        expect(result.processTypes).toEqual({ web: 'second-web' });
        const dir = await extract(result);
        expect(await readFile(join(dir, 'from-first'), 'utf8')).toBe('set by first\n');
        expect(await readFile(join(dir, 'tool-output'), 'utf8')).toBe('tool says hi\n');
      });
    });

    describe('public buildpacks', () => {
      it('runs one written as Heroku writes theirs: strict bash, lib/ from its dir, curl, tar, sed, grep, mktemp, HOME', async () => {
        const bp = join(root, 'packs', 'heroku-style');
        await writeTree(join(root, 'tool'), {
          'bin/hello': bash('echo "hello from the vendored tool"'),
        });
        await mkdir(join(bp, 'vendor'), { recursive: true });
        await new Promise<void>((resolve, reject) => {
          const tar = spawn(
            'tar',
            ['czf', join(bp, 'vendor', 'tool.tgz'), '-C', join(root, 'tool'), 'bin'],
            {
              stdio: 'ignore',
            },
          );
          tar.on('error', reject);
          tar.on('exit', (code) =>
            code === 0 ? resolve() : reject(new Error(`tar exited ${code}`)),
          );
        });
        await pack('heroku-style', {
          'bin/detect': bash('[ -f "$1/tool.txt" ] && echo "Heroku Style" || exit 1'),
          'lib/output.sh': [
            'topic() { echo "-----> $*"; }',
            "indent() { sed -u 's/^/       /'; }",
            '',
          ].join('\n'),
          'bin/compile': bash(
            [
              'set -euo pipefail',
              'BUILD_DIR=${1:-}',
              'CACHE_DIR=${2:-}',
              'ENV_DIR=${3:-}',
              'BP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")"; cd ..; pwd)',
              'source "$BP_DIR/lib/output.sh"',
              'topic "Installing tool for $STACK"',
              'tmp=$(mktemp -d)',
              'curl -fsSL --retry 1 "file://$BP_DIR/vendor/tool.tgz" -o "$tmp/tool.tgz"',
              'mkdir -p "$BUILD_DIR/.heroku/tool"',
              'tar xzf "$tmp/tool.tgz" -C "$BUILD_DIR/.heroku/tool"',
              'version=$(grep -E "^version=" "$BUILD_DIR/tool.txt" | sed -e "s/^version=//")',
              'echo "tool $version" | indent',
              'mkdir -p "$HOME/.config" "$CACHE_DIR/downloads" "$BUILD_DIR/.profile.d"',
              'cp "$tmp/tool.tgz" "$CACHE_DIR/downloads/"',
              'echo \'export PATH="$HOME/.heroku/tool/bin:$PATH"\' > "$BUILD_DIR/.profile.d/tool.sh"',
              'echo "export PATH=\\"$BUILD_DIR/.heroku/tool/bin:\\$PATH\\"" > "$BP_DIR/export"',
              '"$BUILD_DIR/.heroku/tool/bin/hello" > "$BUILD_DIR/said"',
              '[ -d "$ENV_DIR" ]',
            ].join('\n'),
          ),
        });
        const cacheDir = join(root, 'cache');
        const result = await run({
          source: await app({ 'tool.txt': 'name=tool\nversion=1.2.3\n' }),
          buildpacks: [bp],
          cacheDir,
        });
        expect(result.output).toContain(
          '-----> Installing tool for heroku-24\n       tool 1.2.3\n',
        );
        const dir = await extract(result);
        expect(await readFile(join(dir, 'said'), 'utf8')).toBe('hello from the vendored tool\n');
        expect(await readdir(join(cacheDir, 'downloads'))).toEqual(['tool.tgz']);
      });
    });

    describe('stopping a build', () => {
      /** A compile that starts a background process holding a FIFO open, then waits. */
      const hanging = (): Promise<string> =>
        pack('hang', {
          'bin/detect': bash('echo Hang'),
          'bin/compile': bash(
            [
              'mkfifo "$2/fifo"',
              'echo started',
              // Opens once the test reads the FIFO, then hands it to a background process.
              'exec 3>"$2/fifo"',
              '(exec sleep 1000) &',
              'exec 3>&-',
              'echo holding',
              'sleep 1000',
            ].join('\n'),
          ),
        });
      /** Resolves when every writer of the FIFO is gone: the background process was killed. */
      const writersGone = async (fifo: string): Promise<void> => {
        const stream = createReadStream(fifo);
        stream.resume();
        await once(stream, 'end');
        stream.destroy();
      };

      it('aborts with the signal reason and kills everything the step started', async () => {
        const bp = await hanging();
        const cacheDir = join(root, 'cache');
        const controller = new AbortController();
        let gone: Promise<void> | undefined;
        const building = run({
          source: await app({ 'a.txt': 'a' }),
          cacheDir,
          buildpacks: [bp],
          signal: controller.signal,
          onOutput: (line) => {
            if (line === 'started') gone = writersGone(join(cacheDir, 'fifo'));
            // The background process holds the FIFO: stop the build.
            if (line === 'holding') controller.abort(new Error('stop it'));
          },
        });
        const err = await rejection(building);
        expect((err as unknown as Error).message).toBe('stop it');
        await gone;
        expect(await lsWork()).toEqual([]);
        expect(await readdir(cacheDir)).not.toContain('.flotilla-build.lock');
      });

      it('times out with FLOTILLA_BUILDPACK_TIMEOUT and kills everything the step started', async () => {
        const bp = await hanging();
        const cacheDir = join(root, 'cache');
        let gone: Promise<void> | undefined;
        const err = await rejection(
          run({
            source: await app({ 'a.txt': 'a' }),
            cacheDir,
            buildpacks: [bp],
            timeoutMs: 3000,
            onOutput: (line) => {
              if (line === 'started') gone = writersGone(join(cacheDir, 'fifo'));
            },
          }),
        );
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_TIMEOUT');
        expect(err['output']).toContain('started');
        expect(gone).toBeDefined();
        await gone;
        expect(await lsWork()).toEqual([]);
      });
    });

    describe('stopping an npm build script', () => {
      // Each sleep is told apart by its own fraction of a second, so that its pid can be found.
      const tag = (): string => `300.${Math.floor(Math.random() * 1e9)}`;
      const strays: number[] = [];
      afterEach(() => {
        for (const pid of strays.splice(0)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      });

      it('an abort kills what the script started, also a process in a session of its own (setsid)', async () => {
        const detached = tag();
        const plain = tag();
        const source = await app({
          'package.json': JSON.stringify({
            name: 'hang',
            version: '1.0.0',
            private: true,
            scripts: {
              build: `setsid sleep ${detached} & sleep ${plain} & echo hanging; sleep 1000`,
            },
          }),
        });
        const controller = new AbortController();
        let hanging!: () => void;
        const isHanging = new Promise<void>((resolve) => (hanging = resolve));
        const building = run({
          source,
          signal: controller.signal,
          onOutput: (line) => line.trim() === 'hanging' && hanging(),
        });
        const failed = rejection(building);
        await Promise.race([isHanging, failed]);
        // Both sleeps were forked before the echo; wait for their exec to show in /proc.
        const pids = await vi.waitFor(
          async () => {
            const found = [...(await sleepers(detached)), ...(await sleepers(plain))];
            strays.push(...found);
            expect(found).toHaveLength(2);
            return found;
          },
          { timeout: 10_000, interval: 20 },
        );
        controller.abort(new Error('push abandoned'));
        const err = await failed;
        expect((err as unknown as Error).message).toBe('push abandoned');
        expect(await sleeping(pids[0] as number, detached)).toBe(false);
        expect(await sleeping(pids[1] as number, plain)).toBe(false);
        expect(await lsWork()).toEqual([]);
      });

      it('a timeout kills what the script started, also a process in a session of its own (setsid)', async () => {
        const detached = tag();
        const plain = tag();
        const source = await app({
          'package.json': JSON.stringify({
            name: 'hang',
            version: '1.0.0',
            private: true,
            scripts: {
              build: `setsid sleep ${detached} & sleep ${plain} & echo hanging; sleep 1000`,
            },
          }),
        });
        let hanging = false;
        const err = await rejection(
          run({
            source,
            timeoutMs: 15_000,
            onOutput: (line) => {
              if (line.trim() === 'hanging') hanging = true;
            },
          }),
        );
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_TIMEOUT');
        // The script ran past starting both, and no live process runs either's command line.
        expect(hanging).toBe(true);
        const left = [...(await sleepers(detached)), ...(await sleepers(plain))];
        strays.push(...left);
        expect(left).toEqual([]);
        expect(await lsWork()).toEqual([]);
        // The build's own 15 s bound, then killing the tree: past vitest's 20 s default on a
        // loaded machine (it took 15.1 s in CI).
      }, 45_000);
    });

    describe('slug', () => {
      it('refuses a build that links out of the app (a symlink to /etc)', async () => {
        const bp = await pack('escape', {
          'bin/detect': bash('echo Escape'),
          'bin/compile': bash(
            'ln -s /etc "$1/etc-link"\nln -s ../../../../../../etc "$1/rel-link"',
          ),
        });
        const slugPath = join(root, 'out', 'slug.tgz');
        const err = await rejection(
          run({ source: await app({ 'a.txt': 'a' }), buildpacks: [bp], slugPath }),
        );
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_SLUG_REFUSED');
        await expect(readdir(join(root, 'out'))).resolves.toEqual([]);
        expect(await lsWork()).toEqual([]);
      });

      it('leaves .git and what .slugignore names out of the slug', async () => {
        const bp = await pack('keep', {
          'bin/detect': bash('echo Keep'),
          'bin/compile': bash('seen=$(ls -A "$1" | sort)\necho "$seen" > "$1/seen-by-compile"'),
        });
        const source = await app({
          '.git/HEAD': 'ref: refs/heads/main\n',
          '.slugignore': '*.psd\n/docs\n',
          'art.psd': 'big',
          'docs/manual.md': 'm',
          'src/docs/keep.md': 'k',
          'index.txt': 'i',
        });
        const dir = await extract(await run({ source, buildpacks: [bp] }));
        expect(await readFile(join(dir, 'seen-by-compile'), 'utf8')).toBe(
          '.slugignore\nindex.txt\nsrc\n',
        );
        expect((await readdir(dir)).sort()).toEqual([
          '.slugignore',
          'index.txt',
          'seen-by-compile',
          'src',
        ]);
        expect(await readFile(join(dir, 'src', 'docs', 'keep.md'), 'utf8')).toBe('k');
      });
    });

    describe('bundled buildpacks', () => {
      const nodeApp = {
        'package.json': JSON.stringify({
          name: 'sample',
          version: '1.0.0',
          private: true,
          scripts: { build: 'node build.js', start: 'node server.js' },
          dependencies: { greet: 'file:./vendor/greet' },
        }),
        'vendor/greet/package.json': JSON.stringify({
          name: 'greet',
          version: '1.0.0',
          main: 'index.js',
        }),
        'vendor/greet/index.js': 'module.exports = (who) => `hello ${who}`;\n',
        'build.js': "require('fs').writeFileSync('built.txt', 'built at build time');\n",
        'server.js': [
          "const http = require('http');",
          "const greet = require('greet');",
          "const built = require('fs').readFileSync('built.txt', 'utf8');",
          'http.createServer((req, res) => res.end(`${greet(process.env.NODE_ENV)} | ${built}`))',
          "  .listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));",
        ].join('\n'),
        Procfile: 'web: node server.js\n',
      };

      it('nodejs: installs with npm, runs the build script, and the slug started with its Procfile command answers HTTP', async () => {
        const cacheDir = join(root, 'cache');
        const source = await app(nodeApp);
        const result = await run({ source, cacheDir });
        expect(result.buildpacks).toEqual([{ name: 'Node.js', url: 'flotilla/nodejs' }]);
        expect(result.output).toContain('-----> Node.js app detected');
        expect(result.output).toContain('-----> Installing dependencies with npm install');
        expect(result.output).toContain('-----> Running npm run build');
        expect(result.processTypes).toEqual({ web: 'node server.js' });
        const dir = await extract(result);
        const port = await freePort();
        await start(dir, result.processTypes['web'] ?? '', port);
        expect(await get(port, '/')).toEqual({
          status: 200,
          body: 'hello production | built at build time',
        });

        // Unchanged, the second build restores node_modules from the cache instead of installing.
        const again = await run({ source, cacheDir });
        expect(again.output).toContain('-----> Restoring node_modules from the cache');
        expect(again.output).not.toContain('Installing dependencies');
      });

      it('nodejs: devDependencies serve the build script and are pruned from the slug', async () => {
        const result = await run({
          source: await app({
            'package.json': JSON.stringify({
              name: 'devapp',
              version: '1.0.0',
              private: true,
              dependencies: { greet: 'file:./vendor/greet' },
              devDependencies: { tool: 'file:./vendor/tool' },
              scripts: {
                build: `node -e "require('fs').writeFileSync('out.txt', require('tool'))"`,
              },
            }),
            'vendor/greet/package.json': nodeApp['vendor/greet/package.json'],
            'vendor/greet/index.js': nodeApp['vendor/greet/index.js'],
            'vendor/tool/package.json': JSON.stringify({ name: 'tool', version: '1.0.0' }),
            'vendor/tool/index.js': "module.exports = 'made by a devDependency';\n",
          }),
        });
        expect(result.output).toContain('-----> Pruning devDependencies');
        const dir = await extract(result);
        expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('made by a devDependency');
        const modules = await readdir(join(dir, 'node_modules'));
        expect(modules).toContain('greet');
        expect(modules).not.toContain('tool');
      });

      it('nodejs: installs with npm ci when the app has a lock file', async () => {
        const lock = {
          name: 'locked',
          version: '1.0.0',
          lockfileVersion: 3,
          requires: true,
          packages: {
            '': {
              name: 'locked',
              version: '1.0.0',
              dependencies: { greet: 'file:./vendor/greet' },
            },
            'node_modules/greet': { resolved: 'vendor/greet', link: true },
            'vendor/greet': { version: '1.0.0' },
          },
        };
        const result = await run({
          source: await app({
            'package.json': JSON.stringify({
              name: 'locked',
              version: '1.0.0',
              private: true,
              dependencies: { greet: 'file:./vendor/greet' },
            }),
            'package-lock.json': JSON.stringify(lock),
            'vendor/greet/package.json': nodeApp['vendor/greet/package.json'],
            'vendor/greet/index.js': nodeApp['vendor/greet/index.js'],
          }),
        });
        expect(result.output).toContain('-----> Installing dependencies with npm ci');
        const dir = await extract(result);
        expect(await readFile(join(dir, 'node_modules', 'greet', 'index.js'), 'utf8')).toBe(
          nodeApp['vendor/greet/index.js'],
        );
      });

      it('nodejs: the default process type is npm start, and a failing build script fails the build', async () => {
        const source = await app({
          'package.json': JSON.stringify({
            name: 'bare',
            version: '1.0.0',
            scripts: { start: 'node -e 0' },
          }),
        });
        const result = await run({ source });
        expect(result.processTypes).toEqual({ web: 'npm start' });
        const failingBuild = await app(
          {
            'package.json': JSON.stringify({
              name: 'broken',
              version: '1.0.0',
              scripts: { build: 'echo compiling assets; exit 7' },
            }),
          },
          'broken',
        );
        const err = await rejection(run({ source: failingBuild }));
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_COMPILE_FAILED');
        expect(err['output']).toContain('       compiling assets');
        const badJson = await app({ 'package.json': '{ "name": ' }, 'bad-json');
        const err2 = await rejection(run({ source: badJson }));
        expect(err2['code']).toBe('FLOTILLA_BUILDPACK_COMPILE_FAILED');
        expect(err2['output']).toContain('package.json is not valid JSON');
      });

      it('static: serves the site on $PORT with the bundled server, nothing outside it', async () => {
        const result = await run({
          source: await app({
            'index.html': '<h1>home</h1>',
            'about/index.html': '<h1>about</h1>',
            'secret.txt': 'outside root',
            'public/index.html': '<h1>public</h1>',
            'static.json': JSON.stringify({ root: 'public' }),
          }),
        });
        expect(result.buildpacks).toEqual([{ name: 'Static HTML', url: 'flotilla/static' }]);
        const dir = await extract(result);
        const port = await freePort();
        await start(dir, result.processTypes['web'] ?? '', port);
        expect(await get(port, '/')).toEqual({ status: 200, body: '<h1>public</h1>' });
        expect((await get(port, '/../secret.txt')).status).toBe(404);
        expect((await get(port, '/%2e%2e/secret.txt')).status).toBe(404);
        expect((await get(port, '/.flotilla-static/server.mjs')).status).toBe(404);

        const outside = await app(
          { 'index.html': 'x', 'static.json': JSON.stringify({ root: '..' }) },
          'outside',
        );
        const err = await rejection(run({ source: outside }));
        expect(err['code']).toBe('FLOTILLA_BUILDPACK_COMPILE_FAILED');
        expect(err['output']).toContain('static.json is not valid: root ".." is outside the app');
      });

      it('procfile: an app whose Procfile names everything builds with nothing compiled', async () => {
        const result = await run({
          source: await app({ Procfile: 'worker: ./run.sh\n', 'run.sh': 'echo hi' }),
        });
        expect(result.buildpacks).toEqual([{ name: 'Procfile', url: 'flotilla/procfile' }]);
        expect(result.processTypes).toEqual({ worker: './run.sh' });
      });
    });
  });
}
