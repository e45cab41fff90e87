import { execFileSync } from 'node:child_process';
import { PaasError, PaasErrorCodes } from '../errors.js';

const REMOTE_APP = /\/git\/([a-z][a-z0-9-]*)\.git$/;

/** The apps the git remotes of the current directory point at, by remote name. */
export function remoteApps(cwd = process.cwd()): Map<string, string> {
  const apps = new Map<string, string>();
  let out: string;
  try {
    out = execFileSync('git', ['remote', '-v'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return apps; // not a repository, or no git
  }
  for (const line of out.split('\n')) {
    const [name, url] = line.split(/\s+/);
    const m = url === undefined ? null : REMOTE_APP.exec(url);
    if (name !== undefined && m?.[1] !== undefined) apps.set(name, m[1]);
  }
  return apps;
}

/**
 * The app a command is about: `-a/--app`, else `FLOTILLA_APP`, else the git remote
 * (`--remote`, else `flotilla`, else the only remote pointing at a Flotilla app).
 */
export function resolveApp(opts: { app?: string; remote?: string }): string {
  if (opts.app !== undefined && opts.app !== '') return checked(opts.app, '-a');
  const env = process.env.FLOTILLA_APP;
  if (env !== undefined && env !== '') return checked(env, 'FLOTILLA_APP');
  const apps = remoteApps();
  const byName = apps.get(opts.remote ?? 'flotilla');
  if (byName !== undefined) return byName;
  const distinct = new Set(apps.values());
  if (distinct.size === 1) return [...distinct][0] ?? '';
  throw new PaasError(
    PaasErrorCodes.NO_APP,
    distinct.size === 0
      ? 'no app given: pass -a <app>, or run in a git repository with a flotilla remote (flotilla git:remote -a <app>)'
      : `several apps in the git remotes (${[...distinct].join(', ')}): pass -a <app>`,
  );
}

/** An app name, as the server makes them (a DNS label); a URL path would turn `..` into `/`. */
const APP_NAME = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function checked(app: string, from: string): string {
  if (APP_NAME.test(app)) return app;
  throw new PaasError(
    PaasErrorCodes.NO_APP,
    `${JSON.stringify(app.slice(0, 80))} (${from}) is not an app name: app names are 1 to 63 of a-z 0-9 -, starting with a letter; flotilla apps lists them`,
  );
}
