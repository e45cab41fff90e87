import type { Command } from 'commander';
import { wholeNumber } from '../numbers.js';
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

interface DeploymentJson {
  release: string;
  kind: string;
  status: string;
  createdAt: number;
}

/**
 * What the releases table says of each release beside its description: `live`, or how its
 * last deploy ended when that kept it from going live (`failed`, `deploying`). A release whose
 * deploy failed and was rolled back looked like any other.
 */
export function releaseStates(
  releases: readonly Pick<ReleaseJson, 'id'>[],
  deployments: readonly DeploymentJson[],
  live: string | undefined,
): Map<string, string> {
  const last = new Map<string, DeploymentJson>();
  for (const d of deployments) {
    if (d.kind !== 'release') continue;
    const seen = last.get(d.release);
    if (seen === undefined || d.createdAt >= seen.createdAt) last.set(d.release, d);
  }
  const states = new Map<string, string>();
  for (const r of releases) {
    const d = last.get(r.id);
    states.set(
      r.id,
      r.id === live
        ? 'live'
        : d?.status === 'running'
          ? 'deploying'
          : d?.status === 'failed' || d?.status === 'rolled-back'
            ? 'failed'
            : '',
    );
  }
  return states;
}

/** `releases`, `releases:info`, `rollback`. */
export function releaseCommands(program: Command): void {
  jsonOption(appOption(program.command('releases')))
    .description("list an app's releases, newest first")
    .option('-n, --num <n>', 'how many', '15')
    .action(async (o: AppOptions & { num: string }) => {
      // -n abc and -n 0 showed 15 without a word.
      const num = wholeNumber(o.num, {
        option: '-n/--num',
        what: 'a number of releases',
        min: 1,
        max: 1_000_000,
        example: '-n 30',
      });
      const { api, app } = await appContext(o);
      const [releases, info, deployments] = await Promise.all([
        api.get<ReleaseJson[]>(`/apps/${p(app)}/releases`),
        api.get<{ liveRelease?: string }>(`/apps/${p(app)}`),
        o.json ? [] : api.get<DeploymentJson[]>(`/apps/${p(app)}/deployments`),
      ]);
      const shown = releases.slice(0, num);
      if (o.json) return printJson(shown);
      const states = releaseStates(shown, deployments, info.liveRelease);
      process.stdout.write(
        `=== ${app} Releases\n` +
          table(
            shown.map((r) => [
              r.id,
              states.get(r.id) ?? '',
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
