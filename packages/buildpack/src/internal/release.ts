// After compile: the last buildpack's bin/release, the Procfile, and the legacy config_vars
// written as .profile.d defaults.
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseProcfile } from '@flotilla/procfile';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { readAppFile } from './app-file.js';
import type { OutputLog } from './output.js';
import { parseRelease, type ReleaseInfo } from './release-yaml.js';
import { configVarsScript } from './shell.js';
import { runStep, type StepContext } from './step.js';

/** The most bytes of release YAML read. */
const MAX_RELEASE_BYTES = 1024 * 1024;

/** What the build declares: the release's fields and the process types. */
export interface Declared extends ReleaseInfo {
  readonly processTypes: Record<string, string>;
}

/**
 * Runs the last buildpack's `bin/release`, reads the Procfile, and writes the legacy
 * `config_vars` into `.profile.d/000_config_vars.sh`.
 */
export async function declare(
  ctx: StepContext,
  spec: string,
  root: string,
  exports: readonly string[],
): Promise<Declared> {
  const release = await runRelease(ctx, spec, root, ctx.cwd, exports);
  const processTypes = await processTypesOf(ctx.cwd, release, ctx.log);
  if (Object.keys(release.configVars).length > 0) {
    await mkdir(join(ctx.cwd, '.profile.d'), { recursive: true });
    await writeFile(
      join(ctx.cwd, '.profile.d', '000_config_vars.sh'),
      configVarsScript(release.configVars),
    );
  }
  return { ...release, processTypes };
}

async function runRelease(
  ctx: StepContext,
  spec: string,
  root: string,
  buildDir: string,
  exports: readonly string[],
): Promise<ReleaseInfo> {
  const script = join(root, 'bin', 'release');
  if ((await stat(script).catch(() => undefined))?.isFile() !== true) {
    return { defaultProcessTypes: {}, addons: [], configVars: {} };
  }
  const res = await runStep(ctx, script, [buildDir], {
    exports,
    captureStdout: MAX_RELEASE_BYTES + 1,
    buildpack: spec,
  });
  if (res.code !== 0) {
    const how = res.code === null ? `was killed by ${res.signal}` : `exited with ${res.code}`;
    throw new BuildpackError(BuildpackErrorCodes.RELEASE_INVALID, `bin/release of ${spec} ${how}`, {
      buildpack: spec,
      output: ctx.log.text(),
      exitCode: res.code,
      signal: res.signal,
    });
  }
  if (Buffer.byteLength(res.stdout) > MAX_RELEASE_BYTES) {
    throw new BuildpackError(
      BuildpackErrorCodes.RELEASE_INVALID,
      `bin/release of ${spec} printed more than ${MAX_RELEASE_BYTES} bytes`,
      { buildpack: spec, output: ctx.log.text() },
    );
  }
  return parseRelease(res.stdout, spec, () => ctx.log.text());
}

async function processTypesOf(
  buildDir: string,
  release: ReleaseInfo,
  log: OutputLog,
): Promise<Record<string, string>> {
  log.step('Discovering process types');
  const types: Record<string, string> = { ...release.defaultProcessTypes };
  const text = await readAppFile(buildDir, 'Procfile');
  if (text !== undefined) {
    const procfile = parseProcfile(text);
    for (const w of procfile.warnings) log.warn(`Procfile line ${w.line}: ${w.message}`);
    const declared: string[] = [];
    for (const entry of procfile.entries) {
      types[entry.name] = entry.command;
      declared.push(entry.name);
    }
    log.detail(
      `Procfile declares types -> ${declared.length === 0 ? '(none)' : declared.join(', ')}`,
    );
  }
  const defaults = Object.keys(release.defaultProcessTypes);
  if (defaults.length > 0) log.detail(`Default types for buildpack -> ${defaults.join(', ')}`);
  if (Object.keys(types).length === 0) {
    log.warn('No process types: add a Procfile naming the command of each (web: node server.js)');
  }
  return types;
}
