import type { Command } from 'commander';
import { printJson, step, table } from '../output.js';
import { appContext, appOption, jsonOption, p, type AppOptions } from './context.js';

interface DomainJson {
  hostname: string;
  kind: string;
}

/** `domains`, `domains:add`, `domains:remove`. */
export function domainCommands(program: Command): void {
  jsonOption(appOption(program.command('domains')))
    .description("list an app's domains")
    .action(async (o: AppOptions) => {
      const { api, app } = await appContext(o);
      const domains = await api.get<DomainJson[]>(`/apps/${p(app)}/domains`);
      if (o.json) return printJson(domains);
      process.stdout.write(
        `=== ${app} Domains\n` +
          table(
            domains.map((d) => [d.hostname, d.kind]),
            ['HOSTNAME', 'KIND'],
          ),
      );
    });
  appOption(program.command('domains:add <hostname>'))
    .description('route a hostname to the app')
    .action(async (hostname: string, o: AppOptions) => {
      const { api, app } = await appContext(o);
      await step(`Adding ${hostname} to ${app}`, () =>
        api.request('POST', `/apps/${p(app)}/domains`, { hostname }),
      );
    });
  appOption(program.command('domains:remove <hostname>'))
    .description('remove a hostname from the app')
    .action(async (hostname: string, o: AppOptions) => {
      const { api, app } = await appContext(o);
      await step(`Removing ${hostname} from ${app}`, () =>
        api.request('DELETE', `/apps/${p(app)}/domains/${p(hostname)}`),
      );
    });
}
