import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { findLogin } from '../credentials.js';
import { appContext, appOption, type AppOptions } from './context.js';

/**
 * Adds (or repoints) a git remote to the app's repository, and a credential helper for the API's
 * URL that answers with the CLI's login, so the token never lands in `.git/config`. Returns
 * the URL the remote had when it pointed elsewhere (it was repointed), else undefined.
 */
export function addRemote(apiUrl: string, app: string, remote: string): string | undefined {
  const url = `${apiUrl}/git/${app}.git`;
  const git = (...args: string[]): string =>
    execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    git('rev-parse', '--git-dir');
  } catch {
    throw new PaasError(
      PaasErrorCodes.GIT,
      `${process.cwd()} is not a git repository: cd into your app's repository (or git init it) first`,
    );
  }
  let before: string | undefined;
  try {
    before = git('remote', 'get-url', remote).trim();
    git('remote', 'set-url', remote, url);
  } catch {
    git('remote', 'add', remote, url);
  }
  const main = fileURLToPath(new URL('../main.js', import.meta.url));
  const helper = `!'${process.execPath.replaceAll("'", "'\\''")}' '${main.replaceAll("'", "'\\''")}' git:credentials`;
  const key = `credential.${apiUrl}/git/.helper`;
  try {
    git('config', '--local', '--unset-all', key);
  } catch {
    // none yet
  }
  git('config', '--local', '--add', key, '');
  git('config', '--local', '--add', key, helper);
  return before === undefined || before === url ? undefined : before;
}

/** `git:remote`, and the hidden credential helper git calls. */
export function gitCommands(program: Command): void {
  appOption(program.command('git:remote'))
    .description('add a git remote (flotilla) for an app: `git push flotilla main` deploys')
    .action(async (o: AppOptions) => {
      const { api, app } = await appContext(o);
      await api.get(`/apps/${encodeURIComponent(app)}`);
      const remote = o.remote ?? 'flotilla';
      addRemote(api.url, app, remote);
      process.stdout.write(`set git remote ${remote} to ${api.url}/git/${app}.git\n`);
    });

  program
    .command('git:credentials <operation>', { hidden: true })
    .description('git credential helper: answers with the login')
    .action(async (operation: string) => {
      const input: Record<string, string> = {};
      for await (const line of createInterface({ input: process.stdin })) {
        const eq = line.indexOf('=');
        if (eq > 0) input[line.slice(0, eq)] = line.slice(eq + 1);
      }
      if (operation !== 'get') return;
      const login = await findLogin();
      const wanted = new URL(login.url);
      if (input.host !== undefined && input.host !== wanted.host) return;
      process.stdout.write(`username=flotilla\npassword=${login.token}\n`);
    });
}
