// build() beyond the executor suite: where buildpacks come from, the app's own choice of them,
// options and hostile input, the cache lock, output limits. Local executor only.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractSlug } from '@flotilla/slug';
import { build, type BuildOptions, type BuildResult } from './build.js';
import { LocalExecutor } from './local-executor.js';

let root: string;
let servers: Server[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-bp-test-'));
  await mkdir(join(root, 'work'));
  servers = [];
});

afterEach(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await rm(root, { recursive: true, force: true });
});

async function writeTree(dir: string, files: Record<string, string>): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    if (name.includes('bin/')) await chmod(path, 0o755);
  }
  return dir;
}

const bash = (body: string): string => `#!/usr/bin/env bash\n${body}\n`;

/** A buildpack that writes its label into the app and declares it as the web command. */
function labelPack(label: string): Record<string, string> {
  return {
    'bin/detect': bash(`echo ${label}`),
    'bin/compile': bash(`echo ${label} > "$1/label"`),
    'bin/release': bash(`echo 'default_process_types: { web: ${label} }'`),
  };
}

let slugs = 0;
const run = (opts: BuildOptions): Promise<BuildResult> =>
  build({ workDir: join(root, 'work'), slugPath: join(root, 'slugs', `${slugs++}.tgz`), ...opts });

async function rejection(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error('expected a failure, and it succeeded');
}

async function labelOf(result: BuildResult): Promise<string> {
  const dir = join(root, `x-${Math.random().toString(36).slice(2)}`);
  await extractSlug(result.slug, dir, { expectedSha256: result.sha256 });
  return (await readFile(join(dir, 'label'), 'utf8')).trim();
}

const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
    },
  }).trim();

describe('where buildpacks come from', () => {
  it('clones a file:// git repository at its HEAD, a tag, or a commit', async () => {
    const repo = await writeTree(join(root, 'repo'), labelPack('one'));
    git(repo, 'init', '-q', '-b', 'main');
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'one');
    git(repo, 'tag', 'v1');
    const first = git(repo, 'rev-parse', 'HEAD');
    await writeTree(repo, labelPack('two'));
    git(repo, 'commit', '-qam', 'two');
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const url = `file://${repo}`;
    expect(await labelOf(await run({ source, buildpacks: [url] }))).toBe('two');
    expect(await labelOf(await run({ source, buildpacks: [`${url}#v1`] }))).toBe('one');
    const byCommit = await run({ source, buildpacks: [`${url}#${first}`] });
    expect(await labelOf(byCommit)).toBe('one');
    expect(byCommit.buildpacks).toEqual([{ name: 'one', url: `${url}#${first}` }]);
    expect(byCommit.output).toContain(`-----> Fetching buildpack ${url}#${first}`);

    const missingRef = await rejection(run({ source, buildpacks: [`${url}#nope`] }));
    expect(missingRef['code']).toBe('FLOTILLA_BUILDPACK_FETCH_FAILED');
    const missingRepo = await rejection(run({ source, buildpacks: [`file://${root}/none`] }));
    expect(missingRepo['code']).toBe('FLOTILLA_BUILDPACK_FETCH_FAILED');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('extracts a .tgz from a path or an http URL, entering its single top directory', async () => {
    await writeTree(join(root, 'tree', 'pack-main'), labelPack('tarred'));
    // Archives made elsewhere often lose the executable bits.
    execFileSync('chmod', ['-R', 'a-x', join(root, 'tree', 'pack-main', 'bin')]);
    execFileSync('chmod', ['a+x', join(root, 'tree', 'pack-main', 'bin')]);
    const tgz = join(root, 'pack.tgz');
    execFileSync('tar', ['czf', tgz, '-C', join(root, 'tree'), 'pack-main']);
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    expect(await labelOf(await run({ source, buildpacks: [tgz] }))).toBe('tarred');
    expect(await labelOf(await run({ source, buildpacks: [`file://${tgz}`] }))).toBe('tarred');

    const body = await readFile(tgz);
    const server = createServer((req, res) => {
      if (req.url === '/pack.tgz') res.end(body);
      else if (req.url === '/garbage.tgz') res.end('not a tarball');
      else res.writeHead(404).end();
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    expect(await labelOf(await run({ source, buildpacks: [`${base}/pack.tgz`] }))).toBe('tarred');
    const notFound = await rejection(run({ source, buildpacks: [`${base}/missing.tgz`] }));
    expect(notFound['code']).toBe('FLOTILLA_BUILDPACK_FETCH_FAILED');
    expect(notFound['message']).toContain('HTTP 404');
    const garbage = await rejection(run({ source, buildpacks: [`${base}/garbage.tgz`] }));
    expect(garbage['code']).toBe('FLOTILLA_BUILDPACK_FETCH_FAILED');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('refuses a directory without bin/compile with FLOTILLA_BUILDPACK_INVALID_BUILDPACK', async () => {
    const pack = await writeTree(join(root, 'half'), { 'bin/detect': bash('echo Half') });
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const err = await rejection(run({ source, buildpacks: [pack] }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_INVALID_BUILDPACK');
    const missing = await rejection(run({ source, buildpacks: [join(root, 'nothing')] }));
    expect(missing['code']).toBe('FLOTILLA_BUILDPACK_FETCH_FAILED');
  });

  it('refuses specs it cannot use safely with FLOTILLA_BUILDPACK_INVALID_OPTIONS', async () => {
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    for (const spec of [
      'relative/dir',
      'ext::sh -c touch% /tmp/pwned',
      'ftp://example.com/pack.tgz',
      '-uhttps://example.com/x.git',
      `file://${root}/repo#--upload-pack=touch`,
      'https://example.com/x.git#a..b',
      'file:///x\0y',
      '',
    ]) {
      const err = await rejection(run({ source, buildpacks: [spec] }));
      expect(err['code'], spec).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    }
  });
});

describe("the app's choice of buildpacks", () => {
  it('BUILDPACK_URL wins over .buildpacks and detection, and must detect the app', async () => {
    const a = await writeTree(join(root, 'a'), labelPack('a'));
    const b = await writeTree(join(root, 'b'), labelPack('b'));
    const source = await writeTree(join(root, 'app'), { '.buildpacks': `${a}\n` });
    expect(await labelOf(await run({ source, buildpacks: [b] }))).toBe('a');
    const chosen = await run({ source, buildpacks: [a], env: { BUILDPACK_URL: b } });
    expect(await labelOf(chosen)).toBe('b');
    const refusing = await writeTree(join(root, 'r'), {
      'bin/detect': bash('exit 1'),
      'bin/compile': bash('exit 0'),
    });
    const err = await rejection(run({ source, env: { BUILDPACK_URL: refusing } }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_NOT_DETECTED');
    expect(err['buildpack']).toBe(refusing);
  });

  it('with appLocalBuildpacks false, an app may not name buildpacks on the build host', async () => {
    const a = await writeTree(join(root, 'a'), labelPack('a'));
    const plain = await writeTree(join(root, 'app'), { Procfile: 'web: x\n' });
    for (const spec of [a, `file://${a}`, `file://${root}/pack.tgz`, `${root}/pack.tgz`]) {
      const err = await rejection(
        run({ source: plain, env: { BUILDPACK_URL: spec }, appLocalBuildpacks: false }),
      );
      expect(err['code'], spec).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    }
    const listed = await writeTree(join(root, 'listed'), {
      '.buildpacks': `flotilla/procfile\n${a}\n`,
    });
    const err = await rejection(run({ source: listed, appLocalBuildpacks: false }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    // The operator's own list may still be local; bundled names are always fine for apps.
    expect(
      await labelOf(await run({ source: plain, buildpacks: [a], appLocalBuildpacks: false })),
    ).toBe('a');
    const bundled = await run({
      source: plain,
      env: { BUILDPACK_URL: 'flotilla/procfile' },
      appLocalBuildpacks: false,
    });
    expect(bundled.buildpacks).toEqual([{ name: 'Procfile', url: 'flotilla/procfile' }]);
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });
});

describe('options and hostile input', () => {
  it('refuses a source that is missing, a file, or holds a FIFO, leaving nothing behind', async () => {
    const file = join(root, 'file');
    await writeFile(file, 'x');
    for (const source of [join(root, 'missing'), file]) {
      expect((await rejection(run({ source })))['code']).toBe('FLOTILLA_BUILDPACK_INVALID_SOURCE');
    }
    const withFifo = await writeTree(join(root, 'app'), { 'package.json': '{}' });
    execFileSync('mkfifo', [join(withFifo, 'pipe')]);
    const err = await rejection(run({ source: withFifo }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_INVALID_SOURCE');
    expect(err['message']).toContain('"pipe"');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('refuses bad options with FLOTILLA_BUILDPACK_INVALID_OPTIONS before doing anything', async () => {
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const bad: Partial<BuildOptions>[] = [
      { env: { '../escape': 'x' } },
      { env: { 'A/B': 'x' } },
      { env: { 'A=B': 'x' } },
      { env: { '': 'x' } },
      { env: { OK: 'nul\0byte' } },
      { env: { OK: 42 as unknown as string } },
      { timeoutMs: Number.NaN },
      { timeoutMs: -1 },
      // Past a timer's 32-bit range: Node.js would fire it at once, or throw a RangeError.
      { timeoutMs: 2 ** 31 },
      { timeoutMs: 2 ** 32 },
      { maxOutputBytes: 0 },
      { cacheDir: join(source, 'cache') },
      { cacheDir: join(source, '..cache') },
      { workDir: join(source, 'work') },
      { cacheDir: root },
      { buildpacks: [] },
      { stack: 'a\nb' },
      { sourceVersion: 'abc\0def' },
      { requestId: '' },
      { path: 42 as unknown as string },
      { slugPath: '' },
    ];
    for (const opts of bad) {
      const err = await rejection(run({ source, ...opts }));
      expect(err['code'], JSON.stringify(opts)).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    }
    expect(((await rejection(run({} as BuildOptions))) as Record<string, unknown>)['code']).toBe(
      'FLOTILLA_BUILDPACK_INVALID_OPTIONS',
    );
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('rejects at once with the reason when the signal is already aborted', async () => {
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const reason = new Error('not now');
    const err = await rejection(run({ source, signal: AbortSignal.abort(reason) }));
    expect(err).toBe(reason);
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('keeps the tail of endless output, in lines no longer than 64 KiB', async () => {
    const pack = await writeTree(join(root, 'loud'), {
      'bin/detect': bash('echo Loud'),
      'bin/compile': bash(
        'seq 1 20000\nhead -c 200000 /dev/zero | tr "\\0" x\necho\necho last line',
      ),
    });
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    let longest = 0;
    let lines = 0;
    const result = await run({
      source,
      buildpacks: [pack],
      maxOutputBytes: 100_000,
      onOutput: (l) => {
        lines++;
        longest = Math.max(longest, l.length);
      },
    });
    expect(lines).toBeGreaterThan(20_000);
    expect(longest).toBe(64 * 1024);
    expect(result.output.length).toBeLessThan(100_000 + 200);
    expect(result.output).toMatch(/^\[\d+ earlier lines dropped\]\n/);
    expect(result.output).toContain('last line\n');
  });

  it('packs no .git at any depth, and warns about Procfile lines it ignores', async () => {
    const pack = await writeTree(join(root, 'gitty'), {
      'bin/detect': bash('echo Gitty'),
      'bin/compile': bash(
        'mkdir -p "$1/.git" "$1/vendor/lib/.git" && touch "$1/vendor/lib/.git/HEAD" "$1/vendor/lib/x"',
      ),
    });
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: ./web\nweb.1: nope\n' });
    const result = await run({ source, buildpacks: [pack] });
    expect(result.output).toContain(' !     Procfile line 2:');
    expect(result.processTypes).toEqual({ web: './web' });
    const dir = join(root, 'out');
    await extractSlug(result.slug, dir);
    expect(await readdir(join(dir, 'vendor', 'lib'))).toEqual(['x']);
    expect(await readdir(dir)).not.toContain('.git');
  });
});

describe('the cache directory', () => {
  const waiting = (): Promise<string> =>
    writeTree(join(root, 'waiting'), {
      'bin/detect': bash('echo Waiting'),
      'bin/compile': bash(
        'mkfifo "$2/go"\necho started\nread -r line < "$2/go"\necho "$line" > "$1/said"',
      ),
    });

  it('lets one build at a time use it: a concurrent one fails with FLOTILLA_BUILDPACK_CACHE_LOCKED', async () => {
    const pack = await waiting();
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const cacheDir = join(root, 'cache');
    let started!: () => void;
    const isStarted = new Promise<void>((resolve) => (started = resolve));
    const first = run({
      source,
      cacheDir,
      buildpacks: [pack],
      onOutput: (l) => l === 'started' && started(),
    });
    await isStarted;
    const err = await rejection(run({ source, cacheDir, buildpacks: [pack] }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_CACHE_LOCKED');
    expect(err['retryable']).toBe(true);
    await writeFile(join(cacheDir, 'go'), 'go on\n');
    const result = await first;
    const dir = join(root, 'out');
    await extractSlug(result.slug, dir);
    expect(await readFile(join(dir, 'said'), 'utf8')).toBe('go on\n');
    await rm(join(cacheDir, 'go'));
    // Released: the next build takes it.
    const again = run({
      source,
      cacheDir,
      buildpacks: [pack],
      onOutput: (l) => l === 'started' && void writeFile(join(cacheDir, 'go'), 'again\n'),
    });
    await expect(again).resolves.toMatchObject({ buildpacks: [{ name: 'Waiting' }] });
  });

  it('takes over an empty lock left long ago (a builder killed before it wrote its name), not a fresh one', async () => {
    const cacheDir = join(root, 'cache');
    await mkdir(cacheDir);
    const lock = join(cacheDir, '.flotilla-build.lock');
    const pack = await writeTree(join(root, 'p'), labelPack('after'));
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    // Fresh: its builder may be writing its name right now.
    await writeFile(lock, '');
    const err = await rejection(run({ source, cacheDir, buildpacks: [pack] }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_CACHE_LOCKED');
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(lock, longAgo, longAgo);
    expect(await labelOf(await run({ source, cacheDir, buildpacks: [pack] }))).toBe('after');
    expect(await readdir(cacheDir)).not.toContain('.flotilla-build.lock');
  });

  it('takes over the lock of a builder that died', async () => {
    const child = spawn('true');
    await once(child, 'exit');
    const cacheDir = join(root, 'cache');
    await mkdir(cacheDir);
    await writeFile(join(cacheDir, '.flotilla-build.lock'), `${child.pid}@${hostname()}\n`);
    const pack = await writeTree(join(root, 'p'), labelPack('after'));
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    expect(await labelOf(await run({ source, cacheDir, buildpacks: [pack] }))).toBe('after');
    // Another host's builder cannot be judged from here: its lock stands.
    await writeFile(join(cacheDir, '.flotilla-build.lock'), `${child.pid}@elsewhere\n`);
    const err = await rejection(run({ source, cacheDir, buildpacks: [pack] }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_CACHE_LOCKED');
  });

  it('a new build removes the work directories of builders that died, and only those', async () => {
    const child = spawn('true');
    await once(child, 'exit');
    const work = join(root, 'work');
    const owners = {
      'flotilla-build-dead': `${child.pid}@${hostname()}`,
      'flotilla-build-live': `${process.pid}@${hostname()}`,
      'flotilla-build-foreign': `${child.pid}@elsewhere`,
      'flotilla-build-unowned': '',
    };
    for (const [name, owner] of Object.entries(owners)) {
      await writeTree(join(work, name), { 'app/x': 'x', '.owner': owner });
    }
    // Directories name their owner themselves now: a dead one's goes, a live one's stays.
    const tag = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    await writeTree(join(work, `flotilla-build-${child.pid}-${tag}-0123456789ab`), {
      'app/x': 'x',
    });
    await writeTree(join(work, `flotilla-build-${process.pid}-${tag}-0123456789ab`), {
      'app/x': 'x',
    });
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n' });
    await run({ source });
    expect((await readdir(work)).sort()).toEqual([
      `flotilla-build-${process.pid}-${tag}-0123456789ab`,
      'flotilla-build-foreign',
      'flotilla-build-live',
      'flotilla-build-unowned',
    ]);
  });
});

describe('executor', () => {
  it('a build whose executor is closed mid-compile fails with the signal that killed the step', async () => {
    const executor = new LocalExecutor();
    const pack = await writeTree(join(root, 'slow'), {
      'bin/detect': bash('echo Slow'),
      'bin/compile': bash('echo started\nsleep 1000'),
    });
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const err = await rejection(
      run({
        source,
        executor,
        buildpacks: [pack],
        onOutput: (l) => l === 'started' && void executor.close(),
      }),
    );
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_COMPILE_FAILED');
    expect(err['signal']).toBe('SIGKILL');
    const after = await rejection(run({ source, executor, buildpacks: [pack] }));
    expect(after['code']).toBe('FLOTILLA_BUILDPACK_EXEC_FAILED');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });
});

describe('probes', () => {
  it('a throwing or rejecting onOutput does not break the build', async () => {
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: ./web\n' });
    const threw = await run({
      source,
      onOutput: () => {
        throw new Error('listener bug');
      },
    });
    expect(threw.output).toContain('-----> Procfile app detected');
    const rejected = await run({ source, onOutput: () => Promise.reject(new Error('async bug')) });
    expect(rejected.processTypes).toEqual({ web: './web' });
  });

  it('an abort while a buildpack downloads rejects with the reason and leaves nothing behind', async () => {
    let requested!: () => void;
    const isRequested = new Promise<void>((resolve) => (requested = resolve));
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(1000));
      requested(); // and never finishes
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/stall.tgz`;
    const controller = new AbortController();
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const building = run({ source, buildpacks: [url], signal: controller.signal });
    await isRequested;
    controller.abort(new Error('enough'));
    expect(((await rejection(building)) as unknown as Error).message).toBe('enough');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('refuses a release YAML alias bomb, and a release that prints too much', async () => {
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
      ...Array.from({ length: 8 }, (_, i) => {
        const p = String.fromCharCode(97 + i);
        const n = String.fromCharCode(98 + i);
        return `${n}: &${n} [*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p},*${p}]`;
      }),
      'default_process_types: { web: *i }',
    ].join('\n');
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    for (const [name, release] of [
      ['bomb', `cat <<'YAML'\n${bomb}\nYAML`],
      ['huge', 'head -c 3000000 /dev/zero | tr "\\0" "a"'],
    ] as const) {
      const pack = await writeTree(join(root, name), {
        'bin/detect': bash('echo X'),
        'bin/compile': bash('exit 0'),
        'bin/release': bash(release),
      });
      const err = await rejection(run({ source, buildpacks: [pack] }));
      expect(err['code'], name).toBe('FLOTILLA_BUILDPACK_RELEASE_INVALID');
    }
  });

  it('refuses an app whose source links out of itself, and a .buildpacks with a relative path', async () => {
    const linked = await writeTree(join(root, 'linked'), { Procfile: 'web: x\n' });
    execFileSync('ln', ['-s', '/etc/passwd', join(linked, 'passwd')]);
    const err = await rejection(run({ source: linked }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_SLUG_REFUSED');
    expect(err['path']).toBe('passwd');
    const relative = await writeTree(join(root, 'rel'), { '.buildpacks': 'vendor/pack\n' });
    const err2 = await rejection(run({ source: relative }));
    expect(err2['code']).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('refuses a cacheDir that is a file, and makes a missing workDir', async () => {
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n' });
    await writeFile(join(root, 'cachefile'), '');
    const err = await rejection(run({ source, cacheDir: join(root, 'cachefile') }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_INVALID_OPTIONS');
    const result = await build({ source, workDir: join(root, 'new', 'work') });
    expect(result.processTypes).toEqual({ web: 'x' });
    // Without slugPath, the slug is in a directory of its own that the caller then owns.
    expect(result.slug).toMatch(/\/flotilla-slug-[^/]+\/slug\.tgz$/);
    await rm(dirname(result.slug), { recursive: true });
    expect(await readdir(join(root, 'new', 'work'))).toEqual([]);
  });

  it('two builds of one source with their own caches run at once', async () => {
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n', 'a.txt': 'a' });
    const [a, b] = await Promise.all([
      run({ source, cacheDir: join(root, 'c1') }),
      run({ source, cacheDir: join(root, 'c2') }),
    ]);
    expect(a.sha256).toBe(b.sha256);
    expect(a.slug).not.toBe(b.slug);
  });

  it('an abort while the slug is packed leaves no slug and no temporary files', async () => {
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n', 'a.txt': 'a' });
    const controller = new AbortController();
    const slugPath = join(root, 'out', 'slug.tgz');
    const err = await rejection(
      run({
        source,
        slugPath,
        signal: controller.signal,
        onOutput: (line) => line === '-----> Compressing...' && controller.abort(new Error('halt')),
      }),
    );
    expect((err as unknown as Error).message).toBe('halt');
    expect(await readdir(join(root, 'out'))).toEqual([]);
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('a compile killed from outside fails with the signal that killed it', async () => {
    const pack = await writeTree(join(root, 'killed'), {
      'bin/detect': bash('echo Killed'),
      'bin/compile': bash('echo dying\nkill -KILL $$'),
    });
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const err = await rejection(run({ source, buildpacks: [pack] }));
    expect(err).toMatchObject({
      code: 'FLOTILLA_BUILDPACK_COMPILE_FAILED',
      exitCode: null,
      signal: 'SIGKILL',
    });
    expect(err['output']).toContain('dying\n');
  });

  it('an abort while git clones kills git and its helpers, and leaves nothing behind', async () => {
    let connected!: (socket: Socket) => void;
    const isConnected = new Promise<Socket>((resolve) => (connected = resolve));
    const server = createServer((req) => connected(req.socket)); // never answers
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/pack.git`;
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const controller = new AbortController();
    const building = run({ source, buildpacks: [url], signal: controller.signal });
    const socket = await isConnected;
    // Not events.once: it rejects on an 'error' (a reset when git is killed), unhandled while
    // the build's rejection is awaited.
    const closed = new Promise((resolve) => socket.once('close', resolve));
    controller.abort(new Error('no more'));
    expect(((await rejection(building)) as unknown as Error).message).toBe('no more');
    await closed; // git-remote-http, which held the connection, is gone
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it("never reads the app's control files through a symlink (their lines would reach the output)", async () => {
    for (const name of ['Procfile', '.buildpacks', '.slugignore']) {
      const source = await writeTree(join(root, `app-${name}`), { 'index.html': 'x' });
      execFileSync('ln', ['-s', '/etc/passwd', join(source, name)]);
      const lines: string[] = [];
      const err = await rejection(run({ source, onOutput: (l) => lines.push(l) }));
      expect(err['code'], name).toBe('FLOTILLA_BUILDPACK_INVALID_SOURCE');
      expect(err['message']).toContain(`${name} is a symlink`);
      expect(lines.join('\n')).not.toContain('root:');
    }
    const big = await writeTree(join(root, 'big'), {
      Procfile: `web: x\n${'#'.repeat(2 * 1024 * 1024)}`,
    });
    expect((await rejection(run({ source: big })))['code']).toBe(
      'FLOTILLA_BUILDPACK_INVALID_SOURCE',
    );
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('a frozen compile (SIGSTOP) is killed at the timeout', async () => {
    const pack = await writeTree(join(root, 'frozen'), {
      'bin/detect': bash('echo Frozen'),
      'bin/compile': bash('echo freezing\nkill -STOP $$\necho thawed'),
    });
    const source = await writeTree(join(root, 'app'), { 'a.txt': 'a' });
    const err = await rejection(run({ source, buildpacks: [pack], timeoutMs: 1500 }));
    expect(err['code']).toBe('FLOTILLA_BUILDPACK_TIMEOUT');
    expect(err['output']).toContain('freezing\n');
    expect(err['output']).not.toContain('thawed');
    expect(await readdir(join(root, 'work'))).toEqual([]);
  });

  it('sets SOURCE_VERSION to the commit of a git source, whose .git stays out', async () => {
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n' });
    git(source, 'init', '-q');
    git(source, 'add', '.');
    git(source, 'commit', '-qm', 'first');
    const head = git(source, 'rev-parse', 'HEAD');
    const pack = await writeTree(join(root, 'sv'), {
      'bin/detect': bash('echo SV'),
      'bin/compile': bash(
        'echo "sv=$SOURCE_VERSION"; ls -A "$1" > "$HOME/seen"; cp "$HOME/seen" "$1/seen"',
      ),
    });
    const result = await run({ source, buildpacks: [pack] });
    expect(result.output).toContain(`sv=${head}\n`);
    const dir = join(root, 'out');
    await extractSlug(result.slug, dir);
    expect(await readFile(join(dir, 'seen'), 'utf8')).toBe('Procfile\n');
  });
});

describe('a builder SIGKILLed while it packs the slug', () => {
  const builders: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const child of builders.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
  it("leaves the default slug directory behind; the next build removes it, and only dead builders' ones", async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    if (!existsSync(dist)) throw new Error('packages/buildpack/dist is missing: run `npx tsc -b`');
    const temp = join(root, 'tmp');
    const work = join(root, 'work');
    await mkdir(temp);
    // Incompressible, so that packing takes long enough to be killed in the middle.
    const source = await writeTree(join(root, 'app'), { Procfile: 'web: x\n' });
    await writeFile(join(source, 'big.bin'), randomBytes(48 * 1024 * 1024));
    await writeFile(
      join(root, 'builder.mjs'),
      [
        "import { watch } from 'node:fs';",
        `import { build } from ${JSON.stringify(dist)};`,
        // Says when the slug directory exists: the parent kills it then.
        `watch(${JSON.stringify(temp)}, (_e, name) => name?.startsWith('flotilla-slug-') && console.log('packing'));`,
        `const r = await build({ source: ${JSON.stringify(source)}, workDir: ${JSON.stringify(work)} });`,
        'console.log(JSON.stringify(r.slug));',
        'process.exit(0);',
      ].join('\n'),
    );
    const builder = (): ReturnType<typeof spawn> => {
      const child = spawn(process.execPath, [join(root, 'builder.mjs')], {
        env: { ...process.env, TMPDIR: temp },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      builders.push(child);
      return child;
    };
    const killed = builder();
    killed.stdout?.setEncoding('utf8');
    let said = '';
    await new Promise<void>((resolve, reject) => {
      killed.stdout?.on('data', (d: string) => {
        said += d;
        if (said.includes('packing')) resolve();
      });
      killed.once('exit', () => reject(new Error(`the builder ended first: ${said}`)));
    });
    killed.kill('SIGKILL');
    await once(killed, 'exit');
    // Its directory is left, named after the dead builder.
    const [left] = await readdir(temp);
    const tag = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    expect(left).toMatch(new RegExp(`^flotilla-slug-${killed.pid}-${tag}-[0-9a-f]{12}$`));
    // A live builder's, another host's, and one handed to a caller stay.
    const kept = [
      `flotilla-slug-${process.pid}-${tag}-0123456789ab`,
      `flotilla-slug-${killed.pid}-00000000-0123456789ab`,
      'flotilla-slug-0123456789ab',
    ];
    for (const name of kept) await writeTree(join(temp, name), { 'slug.tgz': 'x' });

    const next = builder();
    let out = '';
    next.stdout?.setEncoding('utf8');
    next.stdout?.on('data', (d: string) => (out += d));
    const [code] = (await once(next, 'exit')) as [number | null];
    expect(code).toBe(0);
    const slug = JSON.parse(out.trim().split('\n').pop() as string) as string;
    expect(dirname(dirname(slug))).toBe(temp);
    expect((await readdir(temp)).sort()).toEqual([...kept, basename(dirname(slug))].sort());
    expect(basename(dirname(slug))).toMatch(/^flotilla-slug-[0-9a-f]{12}$/);
    // The caller owns the new slug's directory: nothing names a builder in it.
    expect(await readdir(dirname(slug))).toEqual(['slug.tgz']);
    expect(await readdir(work)).toEqual([]);
  });
});
