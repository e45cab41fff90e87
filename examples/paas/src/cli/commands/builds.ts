import type { Command } from 'commander';
import { ago, printJson, table } from '../output.js';
import { appContext, appOption, jsonOption, p, type AppOptions } from './context.js';

interface BuildJson {
  id: string;
  status: string;
  source: string;
  builder: string;
  release?: string;
  error?: string;
  createdAt: number;
}

/** `builds`, `builds:output`. */
export function buildCommands(program: Command): void {
  jsonOption(appOption(program.command('builds')))
    .description("list an app's builds, newest first")
    .action(async (o: AppOptions) => {
      const { api, app } = await appContext(o);
      const builds = (await api.get<BuildJson[]>(`/apps/${p(app)}/builds`)).reverse();
      if (o.json) return printJson(builds);
      process.stdout.write(
        table(
          builds.map((b) => [
            b.id,
            b.status,
            b.source.slice(0, 12),
            b.builder,
            b.release ?? '',
            ago(b.createdAt),
            b.error ?? '',
          ]),
          ['BUILD', 'STATUS', 'SOURCE', 'BUILDER', 'RELEASE', 'CREATED', ''],
        ),
      );
    });
  appOption(program.command('builds:output <build>'))
    .description("print a build's output (following it while it runs)")
    .action(async (build: string, o: AppOptions) => {
      const { api, app } = await appContext(o);
      for await (const text of api.lines('GET', `/apps/${p(app)}/builds/${p(build)}/output`)) {
        const l = JSON.parse(text) as { line?: string; build?: BuildJson };
        if (l.line !== undefined) process.stdout.write(`${l.line}\n`);
        else if (l.build !== undefined)
          process.stdout.write(
            `-----> ${l.build.status}${l.build.error ? `: ${l.build.error}` : ''}\n`,
          );
      }
    });
}
