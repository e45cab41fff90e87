import { execFileSync } from 'node:child_process';
import type { Command } from 'commander';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { ago, printJson, step, table } from '../output.js';
import { addRemote } from './git.js';
import { appContext, appOption, client, jsonOption, p, type AppOptions } from './context.js';

interface AppJson {
  name: string;
  createdAt: number;
  latestRelease: number;
  liveRelease?: string;
  web_url?: string;
}

/** `apps`, `create`, `apps:info`, `apps:destroy`. */
export function appCommands(program: Command): void {
  jsonOption(program.command('apps'))
    .description('list the apps')
    .action(async (o: { json?: boolean }) => {
      const apps = await (await client()).get<AppJson[]>('/apps');
      if (o.json) return printJson(apps);
      if (apps.length === 0)
        return void process.stdout.write('No apps yet: flotilla create <name>\n');
      process.stdout.write(
        table(
          apps.map((a) => [a.name, a.liveRelease ?? '-', a.web_url ?? '', ago(a.createdAt)]),
          ['NAME', 'RELEASE', 'URL', 'CREATED'],
        ),
      );
    });

  jsonOption(program.command('create [name]'))
    .alias('apps:create')
    .description(
      'create an app (a generated name when none is given) and, in a git repository, its flotilla remote',
    )
    .option('-r, --remote <remote>', 'name of the git remote to add', 'flotilla')
    .option('--no-remote', 'do not add a git remote')
    .action(async (name: string | undefined, o: { json?: boolean; remote: string | false }) => {
      const api = await client();
      const app = await step(
        `Creating ${name ?? 'an app'}`,
        () => api.request<AppJson>('POST', '/apps', name === undefined ? {} : { name }),
        (a) => `done, ${a.name}`,
      );
      if (o.json) printJson(app);
      else process.stdout.write(`${app.web_url ?? app.name} | ${api.url}/git/${app.name}.git\n`);
      if (o.remote !== false && inGitRepo()) {
        const was = addRemote(api.url, app.name, o.remote);
        process.stderr.write(
          was === undefined
            ? `Git remote ${o.remote} added\n`
            : `Git remote ${o.remote} now points at ${app.name} (it pointed at ${was}; git:remote -a <app> -r <name> adds one under another name)\n`,
        );
      }
    });

  jsonOption(appOption(program.command('apps:info')))
    .alias('info')
    .description("show an app's details")
    .action(async (o: AppOptions) => {
      const { api, app } = await appContext(o);
      const [info, dynos, domains] = await Promise.all([
        api.get<AppJson>(`/apps/${p(app)}`),
        api.get<{ type: string; state: string }[]>(`/apps/${p(app)}/dynos`),
        api.get<{ hostname: string }[]>(`/apps/${p(app)}/domains`),
      ]);
      if (o.json) return printJson({ ...info, dynos, domains });
      const counts = new Map<string, number>();
      for (const d of dynos) counts.set(d.type, (counts.get(d.type) ?? 0) + 1);
      process.stdout.write(
        [
          `=== ${info.name}`,
          `Git URL:  ${api.url}/git/${info.name}.git`,
          `Web URL:  ${info.web_url ?? '-'}`,
          `Release:  ${info.liveRelease ?? '-'} (latest v${info.latestRelease})`,
          `Dynos:    ${[...counts].map(([t, n]) => `${t}: ${n}`).join(', ') || '-'}`,
          `Domains:  ${domains.map((d) => d.hostname).join(', ') || '-'}`,
          `Created:  ${new Date(info.createdAt).toISOString()}`,
        ].join('\n') + '\n',
      );
    });

  appOption(program.command('apps:destroy'))
    .alias('destroy')
    .description('destroy an app: its dynos, releases, config, domains and repository')
    .option('--confirm <app>', 'the app name again, to confirm')
    .action(async (o: AppOptions & { confirm?: string }) => {
      const { api, app } = await appContext(o);
      if (o.confirm !== app)
        throw new PaasError(
          PaasErrorCodes.INVALID_REQUEST,
          `this destroys ${app} for good: run again with --confirm ${app}`,
        );
      await step(`Destroying ${app} (stopping its dynos)`, () =>
        api.request('DELETE', `/apps/${p(app)}`),
      );
    });
}

function inGitRepo(): boolean {
  try {
    execFileSync('git', ['rev-parse', '--git-dir'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
