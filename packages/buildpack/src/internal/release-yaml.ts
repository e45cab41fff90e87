// Parsing what bin/release prints: YAML with default_process_types, addons and config_vars.
import { parse } from 'yaml';
import { BuildpackError, BuildpackErrorCodes } from '../errors.js';
import { isEnvName } from './shell.js';

/** What a buildpack's `bin/release` declared. */
export interface ReleaseInfo {
  readonly defaultProcessTypes: Record<string, string>;
  readonly addons: string[];
  readonly configVars: Record<string, string>;
}

const PROCESS_TYPE = /^[A-Za-z0-9_-]+$/;

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses `bin/release` output; throws `FLOTILLA_BUILDPACK_RELEASE_INVALID` naming what is wrong. */
export function parseRelease(text: string, buildpack: string, output: () => string): ReleaseInfo {
  const fail = (what: string, cause?: unknown): never => {
    throw new BuildpackError(
      BuildpackErrorCodes.RELEASE_INVALID,
      `bin/release of ${buildpack} ${what}; it must print YAML with default_process_types (a map of process type to command), addons (a list) and config_vars (a map)`,
      { buildpack, output: output(), cause },
    );
  };
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    fail(`printed YAML that does not parse (${(err as Error).message.split('\n')[0] ?? ''})`, err);
  }
  if (doc === null || doc === undefined) doc = {};
  if (!isMap(doc)) return fail('printed YAML that is not a map');
  const types: Record<string, string> = {};
  const dpt = doc['default_process_types'];
  if (dpt !== undefined && dpt !== null) {
    if (!isMap(dpt)) fail('gave default_process_types that is not a map');
    for (const [name, command] of Object.entries(dpt as Record<string, unknown>)) {
      if (!PROCESS_TYPE.test(name)) fail(`gave a process type named ${JSON.stringify(name)}`);
      if (typeof command !== 'string' || command.trim() === '') {
        fail(`gave process type ${name} a command that is not a non-empty string`);
      }
      types[name] = command as string;
    }
  }
  const addons: string[] = [];
  const rawAddons = doc['addons'];
  if (rawAddons !== undefined && rawAddons !== null) {
    if (!Array.isArray(rawAddons) || !rawAddons.every((a) => typeof a === 'string')) {
      fail('gave addons that is not a list of strings');
    }
    addons.push(...(rawAddons as string[]));
  }
  const configVars: Record<string, string> = {};
  const cv = doc['config_vars'];
  if (cv !== undefined && cv !== null) {
    if (!isMap(cv)) fail('gave config_vars that is not a map');
    for (const [key, value] of Object.entries(cv as Record<string, unknown>)) {
      if (!isEnvName(key)) fail(`gave a config var named ${JSON.stringify(key)}`);
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        fail(`gave config var ${key} a value that is not a string, number or boolean`);
      }
      const s = String(value);
      if (s.includes('\0')) fail(`gave config var ${key} a value with a NUL byte`);
      configVars[key] = s;
    }
  }
  return { defaultProcessTypes: types, addons, configVars };
}
