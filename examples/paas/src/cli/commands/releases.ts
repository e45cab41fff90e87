import type { Command } from 'commander';
import { ago, printJson, step, table } from '../output.js';
import { appContext, appOption, jsonOption, p, type AppOptions } from './context.js';

interface ReleaseJson {
  id: string;
  version: number;
  description: string;
  build?: string;
  user?: string;
  config: Record<string, string>;
  processTypes: Record<string, string>;
  createdAt: number;
}

/** `releases`, `releases:info`, `rollback`. */
export function releaseCommands(program: Command): void {
  jsonOption(appOption(program.command('releases')))
    .description("list an app's releases, newest first")
    .option('-n, --num <n>', 'how many', '15')
    .action(async (o: AppOptions & { num: string }) => {
      const { api, app } = await appContext(o);
      const [releases, info] = await Promise.all([
        api.get<ReleaseJson[]>(`/apps/${p(app)}/releases`),
        api.get<{ liveRelease?: string }>(`/apps/${p(app)}`),
      ]);
      const shown = releases.slice(0, Number(o.num) || 15);
      if (o.json) return printJson(shown);
      process.stdout.write(
        `=== ${app} Releases\n` +
          table(
            shown.map((r) => [
              r.id,
              r.id === info.liveRelease ? 'live' : '',
              r.description,
              r.user ?? '',
              ago(r.createdAt),
            ]),
            ['RELEASE', '', 'DESCRIPTION', 'BY', 'CREATED'],
          ),
      );
    });

  jsonOption(appOption(program.command('releases:info [release]')))
    .description('show a release (default the newest)')
    .action(async (release: string | undefined, o: AppOptions) => {
      const { api, app } = await appContext(o);
      const r =
        release === undefined
          ? (await api.get<ReleaseJson[]>(`/apps/${p(app)}/releases`))[0]
          : await api.get<ReleaseJson>(`/apps/${p(app)}/releases/${p(release)}`);
      if (o.json) return printJson(r ?? null);
      if (r === undefined) return void process.stdout.write(`${app} has no release yet\n`);
      process.stdout.write(
        [
          `=== Release ${r.id}`,
          `Description:  ${r.description}`,
          `Build:        ${r.build ?? '-'}`,
          `By:           ${r.user ?? '-'}`,
          `When:         ${new Date(r.createdAt).toISOString()}`,
          `Processes:    ${
            Object.entries(r.processTypes)
              .map(([t, c]) => `${t}: ${c}`)
              .join('; ') || '-'
          }`,
          `Config vars:  ${Object.keys(r.config).sort().join(', ') || '-'}`,
        ].join('\n') + '\n',
      );
    });

  appOption(program.command('rollback [release]'))
    .alias('releases:rollback')
    .description(
      'roll back to a release (default the one before the live one): a new release with its build and config',
    )
    .action(async (release: string | undefined, o: AppOptions) => {
      const { api, app } = await appContext(o);
      const r = await step(
        `Rolling back ${app}${release === undefined ? '' : ` to ${release}`} (waiting for the new dynos to be ready)`,
        () =>
          api.request<ReleaseJson>(
            'POST',
            `/apps/${p(app)}/releases`,
            release === undefined ? {} : { release },
          ),
        (x) => `done, ${x.id}`,
      );
      process.stdout.write(`${r.description}\n`);
    });
}
