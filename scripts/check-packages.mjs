#!/usr/bin/env node
// Checks every package as an outside developer gets it: packs it with npm (what `npm publish`
// would upload), then looks at the tarball, not at the workspace, which hides missing
// dependencies and files left out of `files`.
//
//   node scripts/check-packages.mjs              every package, README examples compiled too
//   node scripts/check-packages.mjs --no-compile every package, no README compile (~3 s)
//   node scripts/check-packages.mjs router slug  some packages
//   node scripts/check-packages.mjs --help       this usage (an unknown option: it, and exit 2)
//
// Run `npm run build` first: the tarballs hold dist/. Exits 1 and lists the problems, one a line,
// each saying what to fix. test/packages.test.ts runs the same checks inside `npm test`.
//
// What is checked, per package:
// - package.json: `exports` (types first), `main`, `types` and `bin` point at files in the
//   tarball; `engines.node` is the root's (what CI runs); @flotilla dependencies match the
//   workspace versions; each dependency's own `engines.node` accepts ours.
// - the tarball: no tests, test support or fixtures, no .tsbuildinfo, nothing that looks like a
//   secret, no file over 512 KiB; every source map's sources and every sourceMappingURL are in
//   it; every relative import of a shipped .js / .d.ts resolves to a shipped file; every shipped
//   dist file has its source in src/ (no stale output of a deleted file).
// - imports: every bare import of a shipped .js is a dependency (or a peer; an optional peer
//   only off the main entry's import graph); every bare import of a shipped .d.ts is a
//   dependency that ships types (public .d.ts only), or its @types package is a dependency
//   too; every dependency is imported by some shipped file (or named, for a computed import).
// - in a consumer project (below): `import '<package>'` succeeds, and each bin, run through a
//   symlink as npm links it, answers --help.
// - README: every ```ts block compiles, as its own file, in a consumer project (`"type":
//   "module"`, tsc --strict --module nodenext, exactOptionalPropertyTypes and
//   noUncheckedIndexedAccess, no skipLibCheck) where node_modules holds the
//   unpacked tarballs and the dependencies they declare, nothing else but @types/node.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const defaultRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
/** TypeScript and @types/node come from this repository, whatever `root` is checked. */
const tools = createRequire(join(defaultRoot, 'package.json'));

/** Files no package may ship. */
const FORBIDDEN = [
  [/(^|\/)[^/]*\.(test|spec)\.[cm]?[jt]sx?(\.map)?$/, 'a test file'],
  [/(^|\/)(__tests__|test-support|test-fixtures|fixtures)\//, 'test support or fixtures'],
  [/\.tsbuildinfo$/, 'the TypeScript build cache'],
  [/(^|\/)\.env(\.[^/]*)?$/, 'a .env file (secrets?)'],
  [/(^|\/)\.npmrc$/, 'an .npmrc (a registry token?)'],
  [/\.(pem|key|p12|pfx|crt)$/, 'a key or certificate'],
  [/(^|\/)id_(rsa|ed25519|ecdsa)/, 'an SSH key'],
];
const MAX_FILE_BYTES = 512 * 1024;
/** Scratch directories of runs in progress, removed on Ctrl-C too (see the CLI below). */
const scratch = new Set();
/**
 * Lets the event loop turn. The checks run child processes synchronously, and a signal's
 * handler runs only when the loop turns: without these, a SIGTERM or SIGINT sent to this
 * process alone was held until the run had finished, which then exited 0 as a pass.
 */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Checks the packages under `root`/packages and returns the problems found (empty: all good).
 * `only` limits it to some package directory names; `compile: false` skips the README examples;
 * `importTimeoutMs` bounds the import of each main entry and each bin's `--help` run (default
 * 30 s).
 */
export async function checkPackages({
  root = defaultRoot,
  only = [],
  compile = true,
  importTimeoutMs = 30_000,
} = {}) {
  const problems = [];
  const rootPkg = readJson(join(root, 'package.json'));
  const dirs = readdirSync(join(root, 'packages')).filter((name) =>
    existsSync(join(root, 'packages', name, 'package.json')),
  );
  const checked = dirs.filter((name) => only.length === 0 || only.includes(name));
  for (const name of only) {
    if (!dirs.includes(name)) problems.push(`${name}: no such package directory in packages/`);
  }
  const all = new Map();
  for (const dir of dirs) {
    const pkg = readJson(join(root, 'packages', dir, 'package.json'));
    all.set(pkg.name, { dir, pkg });
  }
  const tmp = mkdtempSync(join(tmpdir(), 'flotilla-check-packages-'));
  scratch.add(tmp);
  try {
    const packed = pack(
      root,
      dirs.map((d) => join(root, 'packages', d)),
      tmp,
    );
    const modules = join(tmp, 'consumer', 'node_modules');
    const unpacked = new Map();
    for (const [name, { dir }] of all) {
      const info = packed.find((p) => p.name === name);
      const into = join(modules, ...info.name.split('/'));
      mkdirSync(into, { recursive: true });
      execFileSync('tar', ['xzf', join(tmp, info.filename), '-C', into, '--strip-components=1']);
      unpacked.set(dir, { info, into });
    }
    await turn();
    const ts = tools('typescript');
    for (const dir of checked) {
      const { info, into } = unpacked.get(dir);
      const report = (msg) => problems.push(`${info.name}: ${msg}`);
      checkPackage({ root, rootPkg, all, dir, info, into, ts, report });
      await turn();
    }
    const consumer = dirname(modules);
    setUpConsumer({ root, all, unpacked, consumer });
    problems.push(
      ...(await importEntries({
        consumer,
        names: checked.map((d) => unpacked.get(d).info.name),
        timeoutMs: importTimeoutMs,
      })),
    );
    await turn();
    for (const dir of checked) {
      problems.push(...runBins({ consumer, ...unpacked.get(dir), timeoutMs: importTimeoutMs }));
      await turn();
    }
    if (compile) problems.push(...compileReadmes({ root, dirs: checked, consumer }));
    await turn();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    scratch.delete(tmp);
  }
  return problems;
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function pack(root, dirs, dest) {
  const res = spawnSync(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', dest, ...dirs],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (res.status !== 0) throw new Error(`npm pack failed: ${res.stderr}`);
  return JSON.parse(res.stdout);
}

function checkPackage({ root, rootPkg, all, dir, info, into, ts, report }) {
  const srcDir = join(root, 'packages', dir);
  const pkg = readJson(join(srcDir, 'package.json'));
  const files = new Set(info.files.map((f) => f.path));
  const deps = pkg.dependencies ?? {};
  const peers = pkg.peerDependencies ?? {};
  const optionalPeers = new Set(
    Object.entries(pkg.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional)
      .map(([name]) => name),
  );

  // --- package.json fields
  const has = (target) => files.has(posix.normalize(target));
  const walkExports = (value, where) => {
    if (typeof value === 'string') {
      if (value.includes('*')) return;
      if (!has(value)) report(`${where} points at ${value}, which is not in the tarball`);
    } else if (value && typeof value === 'object') {
      const keys = Object.keys(value);
      if (keys.includes('types') && keys[0] !== 'types') {
        report(`${where}: put the "types" condition first (TypeScript takes the first match)`);
      }
      for (const key of keys) walkExports(value[key], `${where}.${key}`);
    }
  };
  if (pkg.exports === undefined) report('has no "exports"');
  walkExports(pkg.exports, 'exports');
  for (const field of ['main', 'types']) {
    if (pkg[field] !== undefined && !has(pkg[field])) {
      report(`"${field}" points at ${pkg[field]}, which is not in the tarball`);
    }
  }
  for (const [name, target] of Object.entries(
    typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {}),
  )) {
    if (!has(target)) report(`bin ${name} points at ${target}, which is not in the tarball`);
    else if (!readFileSync(join(into, target), 'utf8').startsWith('#!')) {
      report(`bin ${name} (${target}) has no #! line: npm links it, the shell cannot run it`);
    }
  }
  const wanted = rootPkg.engines?.node;
  if (pkg.engines?.node !== wanted) {
    report(
      `engines.node is ${JSON.stringify(pkg.engines?.node)}; make it ${JSON.stringify(wanted)}, ` +
        'the range of the root package.json, which CI runs',
    );
  }
  const ourMin = minVersion(pkg.engines?.node ?? '*');
  for (const [dep, range] of Object.entries(deps)) {
    const workspace = all.get(dep);
    if (workspace) {
      if (!satisfies(workspace.pkg.version, range)) {
        report(
          `depends on ${dep}@${range}, but the workspace has ${workspace.pkg.version}: npm would ` +
            'fetch another version from the registry',
        );
      }
      continue;
    }
    const depDir = resolvePackageDir(srcDir, dep);
    if (!depDir) {
      report(`dependency ${dep} is not installed in the workspace: run npm install`);
      continue;
    }
    const depEngines = readJson(join(depDir, 'package.json')).engines?.node;
    if (depEngines && ourMin && !satisfies(ourMin, depEngines)) {
      report(
        `engines.node allows Node ${ourMin}, but dependency ${dep} needs ${depEngines}: ` +
          'raise engines.node',
      );
    }
  }

  // --- tarball contents
  for (const f of info.files) {
    const forbidden = FORBIDDEN.find(([re]) => re.test(f.path));
    if (forbidden) {
      report(`ships ${f.path}, ${forbidden[1]}: exclude it in "files"`);
      continue;
    }
    if (f.size > MAX_FILE_BYTES) {
      report(`ships ${f.path} of ${f.size} bytes (over ${MAX_FILE_BYTES}): is it needed?`);
    }
    const m = /^dist\/(.*?)(\.d\.ts|\.js)(\.map)?$/.exec(f.path);
    if (m && existsSync(join(srcDir, 'src'))) {
      const base = join(srcDir, 'src', m[1]);
      if (!['.ts', '.mts', '.tsx', '.js'].some((ext) => existsSync(base + ext))) {
        report(
          `ships ${f.path}, but src/${m[1]}.ts is gone: stale build output, run ` +
            '`npm run clean && npm run build` before packing',
        );
      }
    }
  }
  const missingSources = [];
  for (const path of files) {
    const text = () => readFileSync(join(into, path), 'utf8');
    if (path.endsWith('.map')) {
      let map;
      try {
        map = JSON.parse(text());
      } catch {
        report(`${path} is not a valid source map`);
        continue;
      }
      for (const source of map.sources ?? []) {
        const target = posix.join(posix.dirname(path), map.sourceRoot ?? '', source);
        if (!has(target)) missingSources.push(`${path} -> ${target}`);
      }
    } else if (/\.(js|d\.ts)$/.test(path)) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text())?.[1];
      if (url && !url.startsWith('data:')) {
        const target = posix.join(posix.dirname(path), url);
        if (!has(target)) report(`${path} names source map ${target}, not in the tarball`);
      }
    }
  }

  if (missingSources.length > 0) {
    report(
      `${missingSources.length} source map(s) point at files not in the tarball ` +
        `(${missingSources[0]}${missingSources.length > 1 ? ', ...' : ''}): ship them or no maps`,
    );
  }

  // --- imports
  const jsFiles = [...files].filter((p) => /\.[cm]?js$/.test(p));
  const dtsFiles = [...files].filter((p) => /\.d\.[cm]?ts$/.test(p));
  const importsOf = new Map();
  for (const path of [...jsFiles, ...dtsFiles]) {
    const text = readFileSync(join(into, path), 'utf8');
    const pre = ts.preProcessFile(text, true, true);
    importsOf.set(path, {
      specifiers: pre.importedFiles.map((f) => f.fileName),
      typeRefs: pre.typeReferenceDirectives.map((f) => f.fileName),
    });
  }
  // The files a consumer loads: from the entry points of "exports", following relative imports.
  const reachable = (starts) => {
    const seen = new Set();
    const queue = starts.map((p) => posix.normalize(p));
    while (queue.length > 0) {
      const path = queue.pop();
      if (seen.has(path) || !importsOf.has(path)) continue;
      seen.add(path);
      const dts = /\.d\.[cm]?ts$/.test(path);
      for (const spec of importsOf.get(path).specifiers) {
        if (!spec.startsWith('.')) continue;
        const target = posix.join(posix.dirname(path), spec);
        queue.push(dts ? target.replace(/\.([cm]?)js$/, '.d.$1ts') : target);
      }
    }
    return seen;
  };
  const entries = { types: [], default: [] };
  const collect = (value, condition) => {
    if (typeof value === 'string') (entries[condition] ?? entries.default).push(value);
    else if (value && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        collect(v, key === 'types' ? 'types' : key.startsWith('.') ? condition : 'default');
      }
    }
  };
  collect(pkg.exports, 'default');
  if (pkg.types) entries.types.push(pkg.types);
  const publicTypes = reachable(entries.types);
  const used = new Set();
  const jsText = jsFiles.map((p) => readFileSync(join(into, p), 'utf8')).join('\n');
  for (const dep of Object.keys(deps)) {
    // A computed import(specifier), as the controller's lazy defaults use, names it in a string.
    if (jsText.includes(`'${dep}'`) || jsText.includes(`"${dep}"`)) used.add(dep);
  }
  for (const [path, { specifiers, typeRefs }] of importsOf) {
    const dts = /\.d\.[cm]?ts$/.test(path);
    for (const spec of specifiers) {
      if (spec.startsWith('.')) {
        const target = posix.join(posix.dirname(path), spec);
        const candidates = dts
          ? [target.replace(/\.([cm]?)js$/, '.d.$1ts'), `${target}.d.ts`, target]
          : [target];
        if (!candidates.some((c) => files.has(c))) {
          report(`${path} imports ${spec}, which is not in the tarball`);
        }
        continue;
      }
      if (isBuiltin(spec)) continue;
      const dep = packageName(spec);
      if (dep === pkg.name) continue;
      used.add(dep);
      if (!(dep in deps) && !(dep in peers)) {
        report(
          `${path} imports ${spec}, but ${dep} is not in "dependencies"` +
            (pkg.devDependencies?.[dep] || rootPkg.devDependencies?.[dep]
              ? ' (only a devDependency: the workspace hides it)'
              : ''),
        );
        continue;
      }
      if (dts && publicTypes.has(path) && !all.has(dep)) {
        const depDir = resolvePackageDir(srcDir, dep);
        if (depDir && !shipsTypes(depDir)) {
          const types = `@types/${dep.replace(/^@([^/]+)\//, '$1__')}`;
          used.add(types);
          if (!(types in deps) && !(types in peers)) {
            report(
              `${path} (public types) imports ${spec}, which has no types of its own: add ` +
                `${types} to "dependencies", or the consumer sees \`any\` (an error without ` +
                'skipLibCheck)',
            );
          }
        }
      }
    }
    for (const ref of typeRefs) {
      if (ref === 'node') continue;
      const types = ref.startsWith('@') ? ref : `@types/${ref}`;
      used.add(types);
      if (!(types in deps)) report(`${path} references types "${ref}"; add ${types} to deps`);
    }
  }
  for (const dep of Object.keys(deps)) {
    if (!used.has(dep)) {
      report(
        `declares dependency ${dep}, which no shipped file imports: move it to ` +
          'devDependencies, or drop it',
      );
    }
  }
  // An optional peer (vitest for ./testing) must not load with the main entry.
  const main = pkg.exports?.['.']?.default ?? pkg.exports?.['.']?.import ?? pkg.main;
  if (typeof main === 'string' && optionalPeers.size > 0) {
    for (const path of reachable([main])) {
      for (const spec of importsOf.get(path).specifiers) {
        if (optionalPeers.has(packageName(spec))) {
          report(
            `${path} imports ${spec}, an optional peer, and the main entry loads it: ` +
              'importing the package fails for users without it',
          );
        }
      }
    }
  }
}

function isBuiltin(spec) {
  return spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]);
}

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Where Node would find `dep` from a package's directory, or undefined. */
function resolvePackageDir(from, dep) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', ...dep.split('/'));
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function shipsTypes(dir) {
  const pkg = readJson(join(dir, 'package.json'));
  if (pkg.types || pkg.typings) return true;
  if (JSON.stringify(pkg.exports ?? {}).includes('"types"')) return true;
  return existsSync(join(dir, 'index.d.ts'));
}

// --- the few semver forms package.json files here use: >=, >, <=, <, ^, ~, x ranges, ||.
function parseVersion(v) {
  const m = /^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?/.exec(v.trim());
  if (!m) return undefined;
  return [m[1], m[2], m[3]].map((p) => (p === undefined || p === 'x' || p === '*' ? -1 : +p));
}

function cmp(a, b) {
  for (let i = 0; i < 3; i++) {
    const d = Math.max(a[i], 0) - Math.max(b[i], 0);
    if (d !== 0) return d;
  }
  return 0;
}

function satisfiesComparator(v, comp) {
  if (comp === '' || comp === '*' || comp === 'x') return true;
  const m = /^(>=|<=|>|<|\^|~|=)?\s*(.+)$/.exec(comp);
  const op = m[1] ?? '';
  const want = parseVersion(m[2]);
  if (!want) return false;
  const c = cmp(v, want);
  switch (op) {
    case '>=':
      return c >= 0;
    case '>':
      return c > 0;
    case '<=':
      return c <= 0;
    case '<':
      return c < 0;
    case '^': {
      const i = want[0] !== 0 || want[1] === -1 ? 0 : want[2] === -1 || want[1] !== 0 ? 1 : 2;
      return c >= 0 && v.slice(0, i + 1).every((p, j) => p === Math.max(want[j], 0));
    }
    case '~':
      return c >= 0 && v[0] === want[0] && (want[1] === -1 || v[1] === want[1]);
    default:
      return want.every((p, i) => p === -1 || p === v[i]);
  }
}

/** Whether version `v` (a string) is in `range`. */
export function satisfies(v, range) {
  const version = parseVersion(v);
  if (!version) return false;
  return range.split('||').some((alt) =>
    alt
      .trim()
      .replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1')
      .split(/\s+/)
      .every((comp) => satisfiesComparator(version, comp)),
  );
}

/** The lowest version a range such as '>=20.19' or '^20 || >=22' allows, as a string. */
function minVersion(range) {
  const lows = range.split('||').map((alt) => {
    const m = /(?:>=|\^|~|=)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(alt);
    return m ? [+m[1], +(m[2] ?? 0), +(m[3] ?? 0)] : [0, 0, 0];
  });
  lows.sort(cmp);
  return lows[0]?.join('.');
}

// --- README examples
/**
 * Makes `consumer` a project as npm would install it: node_modules holds the unpacked tarballs
 * and the third-party dependencies they declare (links into the workspace's node_modules),
 * hoisted to the top, or inside the package when the top holds another copy; and @types/node.
 */
function setUpConsumer({ root, all, unpacked, consumer }) {
  const modules = join(consumer, 'node_modules');
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  // Third-party dependencies as npm would hoist them: at the top, or inside the package when
  // the top already holds another copy. Links into the workspace's node_modules.
  const top = new Map();
  const link = (target, at) => {
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(target, at, 'dir');
  };
  for (const { pkg, dir } of all.values()) {
    if (!unpacked.has(dir)) continue;
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      if (all.has(dep)) continue;
      const target = resolvePackageDir(join(root, 'packages', dir), dep);
      if (!target) continue;
      if (!top.has(dep)) {
        top.set(dep, target);
        link(target, join(modules, ...dep.split('/')));
      } else if (top.get(dep) !== target) {
        link(target, join(unpacked.get(dir).into, 'node_modules', ...dep.split('/')));
      }
    }
  }
  if (!top.has('@types/node')) {
    link(resolvePackageDir(defaultRoot, '@types/node'), join(modules, '@types', 'node'));
  }
}

/**
 * Imports each package's main entry in the consumer project, what `import '@flotilla/x'` does:
 * each in a Node process of its own, given `timeoutMs` (an import that hangs, a top-level await
 * that never settles or a busy loop, is a problem; it hung the whole check).
 */
async function importEntries({ consumer, names, timeoutMs }) {
  const problems = [];
  const script = `
    try { await import(process.argv[1]); }
    catch (err) { console.log(String(err?.message ?? err).split('\\n')[0]); process.exit(1); }
    process.exit(0);`;
  for (const name of names) {
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script, name], {
      cwd: consumer,
      encoding: 'utf8',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    if (res.error?.code === 'ETIMEDOUT') {
      problems.push(
        `${name}: importing the main entry did not finish within ${timeoutMs / 1000} s: a ` +
          'top-level await that never settles or a loop at import time? Importing must not wait',
      );
    } else if (res.status !== 0) {
      const why = res.stdout.trim() || `${res.signal ?? `code ${res.status}`} ${res.stderr}`.trim();
      problems.push(`${name}: ${why} (on import of the main entry in a consumer)`);
    }
    await turn();
  }
  return problems;
}

/**
 * Runs each `bin` with --help through a symlink, as npm links it into node_modules/.bin: it must
 * exit 0 and print its usage (a main-module check that compares paths without resolving the
 * link makes it do nothing).
 */
function runBins({ consumer, info, into, timeoutMs }) {
  const pkg = readJson(join(into, 'package.json'));
  const bins = typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
  const problems = [];
  for (const [name, target] of Object.entries(bins)) {
    if (!existsSync(join(into, target))) continue; // reported with the package.json fields
    const link = join(consumer, 'node_modules', '.bin', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), join(into, target)), link);
    const res = spawnSync(process.execPath, [link, '--help'], {
      cwd: consumer,
      encoding: 'utf8',
      timeout: timeoutMs,
      // SIGTERM, the default, left spawnSync waiting on a bin that ignores it: the run hung.
      killSignal: 'SIGKILL',
    });
    if (res.error?.code === 'ETIMEDOUT') {
      problems.push(
        `${info.name}: bin ${name} --help did not finish within ${timeoutMs / 1000} s: ` +
          '--help must print the usage and exit',
      );
    } else if (res.status !== 0 || `${res.stdout}${res.stderr}`.trim() === '') {
      problems.push(
        `${info.name}: bin ${name} --help, run through a symlink as npm installs it, exited ` +
          `${res.status} printing ${JSON.stringify((res.stdout + res.stderr).slice(0, 200))}`,
      );
    }
  }
  return problems;
}

function compileReadmes({ root, dirs, consumer }) {
  const problems = [];
  const blocks = new Map();
  for (const dir of dirs) {
    const readme = join(root, 'packages', dir, 'README.md');
    if (!existsSync(readme)) {
      problems.push(`${readJson(join(root, 'packages', dir, 'package.json')).name}: no README.md`);
      continue;
    }
    for (const block of codeBlocks(readFileSync(readme, 'utf8'))) {
      const file = join(consumer, 'examples', dir, `readme-${block.line}.ts`);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, block.code);
      blocks.set(relative(consumer, file), { readme: relative(root, readme), line: block.line });
    }
  }
  if (blocks.size === 0) return problems;
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      // The strictest options a consumer may have (this repository's own): what compiles with
      // them compiles with --strict alone.
      compilerOptions: {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        noEmit: true,
        types: ['node'],
      },
      include: ['examples/**/*.ts'],
    }),
  );
  const tsc = tools.resolve('typescript/bin/tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', consumer, '--pretty', 'false'], {
    cwd: consumer,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status === 0) return problems;
  const before = problems.length;
  for (const line of res.stdout.split('\n')) {
    const m = /^(.+?)\((\d+),(\d+)\): (error .*)$/.exec(line);
    if (!m) {
      if (line.trim() && !line.startsWith(' ')) problems.push(`README examples: ${line.trim()}`);
      else if (line.trim()) problems[problems.length - 1] += ` ${line.trim()}`;
      continue;
    }
    const block = blocks.get(m[1]);
    problems.push(
      block
        ? `${block.readme}:${block.line + Number(m[2])}:${m[3]}: ${m[4]}`
        : `${m[1].replace(/^node_modules\//, '')}(${m[2]},${m[3]}): ${m[4]}`,
    );
  }
  // tsc killed (Ctrl-C, out of memory) or failing without a diagnostic is no pass.
  if (problems.length === before || res.signal !== null) {
    problems.push(
      `README examples: tsc ended with ${res.signal ?? `code ${res.status}`} ` +
        `${(res.stderr || res.error?.message || '').trim()}`.trim(),
    );
  }
  return problems;
}

/** The ```ts (or ```typescript) blocks of a markdown text, with the line of their fence. */
export function codeBlocks(markdown) {
  const out = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const start = i;
    const body = [];
    for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) {
      body.push(lines[i]);
    }
    if (open[3] === 'ts' || open[3] === 'typescript') {
      out.push({ line: start + 1, code: `${body.join('\n')}\n` });
    }
  }
  return out;
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  for (const [signal, number] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
  ]) {
    process.once(signal, () => {
      for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
      process.exit(128 + number);
    });
  }
  const args = process.argv.slice(2);
  const usage =
    'usage: node scripts/check-packages.mjs [--no-compile] [package-dir ...]\n' +
    '  --no-compile  skip compiling the README ```ts blocks\n' +
    '  package-dir   check only these directories of packages/ (default: all)\n';
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage);
    process.exit(0);
  }
  // A typo (--no-compil) was ignored: the run did what was not asked, and took minutes.
  const unknown = args.filter((a) => a.startsWith('-') && a !== '--no-compile');
  if (unknown.length > 0) {
    process.stderr.write(`check-packages: unknown option ${unknown.join(', ')}\n${usage}`);
    process.exit(2);
  }
  const started = performance.now();
  const problems = await checkPackages({
    compile: !args.includes('--no-compile'),
    only: args.filter((a) => !a.startsWith('-')),
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  for (const p of problems) console.log(p);
  console.log(`check-packages: ${problems.length} problem(s) in ${seconds}s`);
  process.exit(problems.length === 0 ? 0 : 1);
}
