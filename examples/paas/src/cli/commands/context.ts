import type { Command } from 'commander';
import { resolveApp } from '../app-name.js';
import { ApiClient } from '../client.js';
import { findLogin } from '../credentials.js';

/** Options every app command takes. */
export interface AppOptions {
  app?: string;
  remote?: string;
  json?: boolean;
}

/** Adds `-a/--app` and `-r/--remote`. */
export function appOption(c: Command): Command {
  return c
    .option('-a, --app <app>', 'the app (default: from the git remote)')
    .option('-r, --remote <remote>', 'the git remote naming the app (default flotilla)');
}

/** Adds `--json`. */
export function jsonOption(c: Command): Command {
  return c.option('--json', 'print JSON');
}

/** An API client for the saved or given login. */
export async function client(): Promise<ApiClient> {
  return new ApiClient(await findLogin());
}

/** The client and the app a command is about. */
export async function appContext(o: AppOptions): Promise<{ api: ApiClient; app: string }> {
  const app = resolveApp(o);
  return { api: await client(), app };
}

/** Encodes an app name for a path. */
export const p = encodeURIComponent;
