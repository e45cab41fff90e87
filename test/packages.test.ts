// The packages as a consumer gets them: scripts/check-packages.mjs packs each one with npm and
// checks the tarball (files, exports, dependencies, an import of each in a consumer project, and
// the README's ```ts blocks compiled against the packed types). Needs `tsc -b` first, as
// `npm test` does.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPackages, codeBlocks, satisfies } from '../scripts/check-packages.mjs';

describe('the packages, packed', () => {
  it('pass every check, README examples compiled against the tarballs', async () => {
    expect(await checkPackages()).toEqual([]);
  }, 180_000);
});

describe('check-packages', () => {
  let root: string;

  const write = (path: string, content: string | object): void => {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'flotilla-check-packages-fixture-'));
    write('package.json', { name: 'fixture', private: true, engines: { node: '>=20.19' } });
    // A sound package.
    write('packages/good/package.json', {
      name: '@fx/good',
      version: '0.1.0',
      type: 'module',
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
      files: ['dist', 'README.md'],
      engines: { node: '>=20.19' },
    });
    write('packages/good/src/index.ts', 'export const answer = 42;\n');
    write('packages/good/dist/index.js', 'export const answer = 42;\n');
    write('packages/good/dist/index.d.ts', 'export declare const answer: number;\n');
    write(
      'packages/good/README.md',
      "# good\n\n```ts\nimport { answer } from '@fx/good';\nconsole.log(answer + 1);\n```\n",
    );
    // A package with one of each defect.
    write('node_modules/untyped/package.json', {
      name: 'untyped',
      version: '1.0.0',
      main: 'index.js',
    });
    write('node_modules/untyped/index.js', 'module.exports = {};\n');
    write('packages/bad/package.json', {
      name: '@fx/bad',
      version: '0.1.0',
      type: 'module',
      exports: {
        '.': { default: './dist/index.js', types: './dist/index.d.ts' },
        './extra': './dist/extra.js',
      },
      files: ['dist', 'README.md'],
      bin: { 'bad-cli': './dist/cli.js' },
      engines: { node: '>=18' },
      dependencies: { '@fx/good': '^0.2.0', untyped: '^1.0.0', 'unused-dep': '^1.0.0' },
      peerDependencies: { vitest: '>=3' },
      peerDependenciesMeta: { vitest: { optional: true } },
    });
    write('packages/bad/src/index.ts', 'export const double = 84;\n');
    write(
      'packages/bad/dist/index.js',
      [
        "import 'left-pad';",
        "import 'vitest';",
        "import 'untyped';",
        "import { answer } from '@fx/good';",
        "import './gone.js';",
        'export const double = answer * 2;',
        '//# sourceMappingURL=index.js.map',
        '',
      ].join('\n'),
    );
    write('packages/bad/dist/index.js.map', {
      version: 3,
      file: 'index.js',
      sources: ['../src/index.ts'],
      mappings: '',
    });
    write(
      'packages/bad/dist/index.d.ts',
      "import type * as U from 'untyped';\nexport declare const double: number;\nexport type T = typeof U;\n",
    );
    write('packages/bad/dist/index.test.js', '// a test\n');
    write('packages/bad/src/cli.ts', '');
    write(
      'packages/bad/dist/cli.js',
      '#!/usr/bin/env node\n' +
        'if (import.meta.url === `file://${process.argv[1]}`) console.log("usage: bad-cli");\n',
    );
    write('packages/bad/dist/.tsbuildinfo', '{}');
    write('packages/bad/dist/stale.js', 'export {};\n');
    write('packages/bad/README.md', "# bad\n\n```ts\nimport { triple } from '@fx/bad';\n```\n");
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('reports each defect of a broken package, and nothing of a sound one', async () => {
    const problems = await checkPackages({ root });
    const expected = [
      '@fx/bad: exports../extra points at ./dist/extra.js, which is not in the tarball',
      '@fx/bad: exports..: put the "types" condition first',
      '@fx/bad: engines.node is ">=18"; make it ">=20.19"',
      '@fx/bad: depends on @fx/good@^0.2.0, but the workspace has 0.1.0',
      '@fx/bad: dependency unused-dep is not installed in the workspace',
      '@fx/bad: declares dependency unused-dep, which no shipped file imports',
      '@fx/bad: ships dist/index.test.js, a test file',
      '@fx/bad: ships dist/.tsbuildinfo, the TypeScript build cache',
      '@fx/bad: ships dist/stale.js, but src/stale.ts is gone',
      '@fx/bad: 1 source map(s) point at files not in the tarball (dist/index.js.map -> src/index.ts)',
      '@fx/bad: dist/index.js imports ./gone.js, which is not in the tarball',
      '@fx/bad: dist/index.js imports left-pad, but left-pad is not in "dependencies"',
      '@fx/bad: dist/index.js imports vitest, an optional peer, and the main entry loads it',
      '@fx/bad: dist/index.d.ts (public types) imports untyped, which has no types of its own',
      "@fx/bad: Cannot find package 'left-pad'",
      '@fx/bad: bin bad-cli --help, run through a symlink as npm installs it, exited 0 printing ""',
      "packages/bad/README.md:4:10: error TS2305: Module '\"@fx/bad\"' has no exported member 'triple'",
    ];
    for (const e of expected) {
      expect(
        problems.some((p) => p.startsWith(e)),
        `${e}\nnot among:\n${problems.join('\n')}`,
      ).toBe(true);
    }
    expect(problems.filter((p) => /good/.test(p.split(':')[0] ?? ''))).toEqual([]);
  }, 60_000);

  it('reports a package asked for that does not exist, rather than checking nothing', async () => {
    expect(await checkPackages({ root, only: ['nope'], compile: false })).toEqual([
      'nope: no such package directory in packages/',
    ]);
  }, 60_000);

  it('the CLI stopped by SIGTERM stops: exits 143 and leaves no scratch directory', async () => {
    // Its own TMPDIR, to see its scratch directory come and go.
    const tmp = mkdtempSync(join(tmpdir(), 'flotilla-check-packages-cli-'));
    try {
      const script = join(
        dirname(fileURLToPath(import.meta.url)),
        '..',
        'scripts',
        'check-packages.mjs',
      );
      const child = spawn(process.execPath, [script, '--no-compile', 'core'], {
        env: { ...process.env, TMPDIR: tmp },
        stdio: 'ignore',
      });
      const exited = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      // Once the run is under way (its scratch directory made, the packages being packed).
      await expect
        .poll(() => readdirSync(tmp).some((n) => n.startsWith('flotilla-check-packages-')), {
          timeout: 30_000,
          interval: 20,
        })
        .toBe(true);
      child.kill('SIGTERM');
      // Before, the signal waited for the run to end, which exited 0 as a pass.
      expect(await exited).toBe(143);
      expect(readdirSync(tmp).filter((n) => n.startsWith('flotilla-check-packages-'))).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  it('reports a main entry whose import hangs, after importTimeoutMs, and checks the rest', async () => {
    // A root of its own: these would hold up every other check of the fixture.
    const hangRoot = mkdtempSync(join(tmpdir(), 'flotilla-check-packages-hang-'));
    try {
      writeFileSync(
        join(hangRoot, 'package.json'),
        JSON.stringify({ name: 'fixture', private: true }),
      );
      const pkg = (name: string, code: string): void => {
        const dir = join(hangRoot, 'packages', name);
        mkdirSync(join(dir, 'dist'), { recursive: true });
        mkdirSync(join(dir, 'src'), { recursive: true });
        writeFileSync(
          join(dir, 'package.json'),
          JSON.stringify({
            name: `@fx/${name}`,
            version: '0.1.0',
            type: 'module',
            exports: { '.': './dist/index.js' },
            files: ['dist'],
          }),
        );
        writeFileSync(join(dir, 'src', 'index.ts'), '');
        writeFileSync(join(dir, 'dist', 'index.js'), code);
      };
      // A top-level await that never settles, the event loop kept alive; a busy loop.
      pkg('waits', 'await new Promise(() => setInterval(() => {}, 1000));\nexport {};\n');
      pkg('spins', 'for (;;) {}\nexport {};\n');
      pkg('fine', 'export const ok = 1;\n');
      // A bin whose --help never ends, deaf to SIGTERM (spawnSync's default kill).
      pkg('stuck-cli', 'export {};\n');
      const stuck = join(hangRoot, 'packages', 'stuck-cli');
      writeFileSync(join(stuck, 'src', 'cli.ts'), '');
      writeFileSync(
        join(stuck, 'dist', 'cli.js'),
        "#!/usr/bin/env node\nprocess.on('SIGTERM', () => {});\nfor (;;) {}\n",
      );
      writeFileSync(
        join(stuck, 'package.json'),
        JSON.stringify({
          name: '@fx/stuck-cli',
          version: '0.1.0',
          type: 'module',
          exports: { '.': './dist/index.js' },
          bin: { 'stuck-cli': './dist/cli.js' },
          files: ['dist'],
        }),
      );
      pkg('throws', "throw new Error('boom at import');\n");
      const problems = await checkPackages({
        root: hangRoot,
        compile: false,
        importTimeoutMs: 1500,
      });
      const imports = problems.filter((p) => /import/.test(p));
      expect(imports).toEqual([
        expect.stringMatching(/^@fx\/spins: importing the main entry did not finish within 1\.5 s/),
        '@fx/throws: boom at import (on import of the main entry in a consumer)',
        expect.stringMatching(/^@fx\/waits: importing the main entry did not finish within 1\.5 s/),
      ]);
      expect(problems.filter((p) => p.startsWith('@fx/stuck-cli'))).toEqual([
        '@fx/stuck-cli: bin stuck-cli --help did not finish within 1.5 s: --help must print the usage and exit',
      ]);
      expect(problems.filter((p) => p.startsWith('@fx/fine'))).toEqual([]);
    } finally {
      rmSync(hangRoot, { recursive: true, force: true });
    }
  }, 60_000);

  it('names a package without a README by its name', async () => {
    const bareRoot = mkdtempSync(join(tmpdir(), 'flotilla-check-packages-bare-'));
    try {
      const at = (path: string, content: string): void => {
        mkdirSync(dirname(join(bareRoot, path)), { recursive: true });
        writeFileSync(join(bareRoot, path), content);
      };
      at('package.json', JSON.stringify({ name: 'fixture', private: true }));
      at(
        'packages/bare/package.json',
        JSON.stringify({
          name: '@fx/bare',
          version: '0.1.0',
          type: 'module',
          exports: { '.': './dist/index.js' },
          files: ['dist'],
        }),
      );
      at('packages/bare/src/index.ts', 'export const ok = 1;\n');
      at('packages/bare/dist/index.js', 'export const ok = 1;\n');
      const problems = await checkPackages({ root: bareRoot });
      // It read "[object Object]: no README.md".
      expect(problems.filter((p) => /README/.test(p))).toEqual(['@fx/bare: no README.md']);
    } finally {
      rmSync(bareRoot, { recursive: true, force: true });
    }
  }, 60_000);

  it('the CLI refuses an unknown option with its usage (a typo was ignored), before any work', () => {
    const script = join(
      dirname(fileURLToPath(import.meta.url)),
      '..',
      'scripts',
      'check-packages.mjs',
    );
    const typo = spawnSync(process.execPath, [script, '--no-compil', 'core'], { encoding: 'utf8' });
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(
      /^check-packages: unknown option --no-compil\nusage: node scripts\/check-packages\.mjs \[--no-compile\]/,
    );
    expect(typo.stdout).toBe('');
    const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--no-compile +skip compiling the README/);
  });

  it('reads the version ranges package.json files use', () => {
    expect(satisfies('20.19.0', '>=20.19')).toBe(true);
    expect(satisfies('20.0.0', '>=20.19')).toBe(false);
    expect(satisfies('20.19.0', '20.x || 22.x || 23.x')).toBe(true);
    expect(satisfies('21.1.0', '20.x || 22.x')).toBe(false);
    expect(satisfies('20.19.0', '^16 || ^18 || >=20')).toBe(true);
    expect(satisfies('0.1.0', '^0.1.0')).toBe(true);
    expect(satisfies('0.2.0', '^0.1.0')).toBe(false);
    expect(satisfies('0.1.0', '0.1.0')).toBe(true);
    expect(satisfies('20.19.0', '>= 8.0')).toBe(true);
  });

  it('finds ```ts blocks with the line of their fence, and only those', () => {
    const md = '# x\n```sh\nnpm i\n```\n\n```ts\nconst a = 1;\n```\n```ts title\nb;\n```\n';
    expect(codeBlocks(md)).toEqual([
      { line: 6, code: 'const a = 1;\n' },
      { line: 9, code: 'b;\n' },
    ]);
  });
});
