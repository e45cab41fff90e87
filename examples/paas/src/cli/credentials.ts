import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PaasError, PaasErrorCodes } from '../errors.js';

/** Where the CLI finds the server. */
export interface Login {
  readonly url: string;
  readonly token: string;
  /** Where it came from, for error messages. */
  readonly source: string;
}

/** The file `flotilla login` writes (`$XDG_CONFIG_HOME/flotilla/login.json`). */
export function loginPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config');
  return join(base, 'flotilla', 'login.json');
}

/** The default API URL of a local server. */
export const DEFAULT_URL = 'http://127.0.0.1:7700';

/**
 * Finds the server: `FLOTILLA_URL` and `FLOTILLA_TOKEN`; else the saved login; else a server on
 * this machine with its default data directory (`FLOTILLA_DATA_DIR` or `./.flotilla`), whose
 * token file is readable.
 */
export async function findLogin(env: NodeJS.ProcessEnv = process.env): Promise<Login> {
  // An empty variable counts as unset.
  const envUrl = env.FLOTILLA_URL === '' ? undefined : env.FLOTILLA_URL?.replace(/\/+$/, '');
  const envToken = env.FLOTILLA_TOKEN;
  if (envToken !== undefined && envToken !== '')
    return { url: envUrl ?? DEFAULT_URL, token: envToken, source: 'FLOTILLA_TOKEN' };
  const saved = await readSaved(env);
  if (saved !== undefined) return envUrl === undefined ? saved : { ...saved, url: envUrl };
  const tokenFile = resolve(env.FLOTILLA_DATA_DIR ?? '.flotilla', 'token');
  if (existsSync(tokenFile)) {
    const token = readFileSync(tokenFile, 'utf8').trim();
    const port = env.FLOTILLA_API_PORT ?? '7700';
    return { url: envUrl ?? `http://127.0.0.1:${port}`, token, source: tokenFile };
  }
  throw new PaasError(
    PaasErrorCodes.API,
    'not logged in: run `flotilla login --url <api url> --token-file <file>`, or set FLOTILLA_URL and FLOTILLA_TOKEN',
  );
}

async function readSaved(env: NodeJS.ProcessEnv): Promise<Login | undefined> {
  const path = loginPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { url?: unknown; token?: unknown };
    if (typeof v.url === 'string' && typeof v.token === 'string')
      return { url: v.url, token: v.token, source: path };
  } catch {
    // reported below
  }
  throw new PaasError(
    PaasErrorCodes.API,
    `${path} is not a saved login: run \`flotilla login\` again`,
  );
}

/** Saves a login (mode 0600), replacing the file atomically. */
export async function saveLogin(
  url: string,
  token: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const path = loginPath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(`${path}.tmp`, JSON.stringify({ url, token }, null, 2) + '\n', { mode: 0o600 });
  await rename(`${path}.tmp`, path);
  return path;
}
