import type { Command } from 'commander';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { printJson, step } from '../output.js';
import { appContext, appOption, jsonOption, p, type AppOptions } from './context.js';

interface PatchResult {
  config: Record<string, string>;
  release?: string;
}

/** `config`, `config:set`, `config:unset`, `config:get`. */
export function configCommands(program: Command): void {
  jsonOption(appOption(program.command('config')))
    .description("show an app's config vars")
    .option('-s, --shell', 'print as KEY=value lines')
    .action(async (o: AppOptions & { shell?: boolean }) => {
      const { api, app } = await appContext(o);
      const config = await api.get<Record<string, string>>(`/apps/${p(app)}/config-vars`);
      if (o.json) return printJson(config);
      const keys = Object.keys(config).sort();
      if (o.shell)
        return void process.stdout.write(keys.map((k) => `${k}=${config[k]}\n`).join(''));
      const width = Math.max(0, ...keys.map((k) => k.length + 1));
      process.stdout.write(
        `=== ${app} Config Vars\n` +
          keys.map((k) => `${`${k}:`.padEnd(width)} ${config[k]}\n`).join(''),
      );
    });

  appOption(program.command('config:set <pairs...>'))
    .description('set config vars (KEY=value ...): a new release, and a rolling restart')
    .action(async (pairs: string[], o: AppOptions) => {
      const patch: Record<string, string> = {};
      for (const pair of pairs) {
        const eq = pair.indexOf('=');
        if (eq <= 0)
          throw new PaasError(PaasErrorCodes.INVALID_REQUEST, `${pair} is not KEY=value`);
        patch[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const { api, app } = await appContext(o);
      await step(
        `Setting ${Object.keys(patch).join(', ')} and restarting ${app}`,
        () => api.request<PatchResult>('PATCH', `/apps/${p(app)}/config-vars`, patch),
        (r) => `done${r.release === undefined ? '' : `, ${r.release}`}`,
      );
    });

  appOption(program.command('config:unset <keys...>'))
    .description('unset config vars: a new release, and a rolling restart')
    .action(async (keys: string[], o: AppOptions) => {
      const { api, app } = await appContext(o);
      const patch = Object.fromEntries(keys.map((k) => [k, null]));
      await step(
        `Unsetting ${keys.join(', ')} and restarting ${app}`,
        () => api.request<PatchResult>('PATCH', `/apps/${p(app)}/config-vars`, patch),
        (r) => `done${r.release === undefined ? '' : `, ${r.release}`}`,
      );
    });

  jsonOption(appOption(program.command('config:get <key>')))
    .description('print one config var')
    .action(async (key: string, o: AppOptions) => {
      const { api, app } = await appContext(o);
      const config = await api.get<Record<string, string>>(`/apps/${p(app)}/config-vars`);
      if (o.json) return printJson(config[key] ?? null);
      if (config[key] !== undefined) process.stdout.write(`${config[key]}\n`);
    });
}
