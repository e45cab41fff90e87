import type { Command } from 'commander';
import { printJson, step, table } from '../output.js';
import { client, jsonOption, p } from './context.js';

interface HostJson {
  id: string;
  address: string;
  state: string;
  capacity: { cpu: number; memory: number };
  jobs: number;
  drain: boolean;
  eligible: boolean;
  reason?: string;
}

/** `hosts`, `hosts:drain`, `hosts:undrain`. */
export function hostCommands(program: Command): void {
  jsonOption(program.command('hosts'))
    .description("list the cluster's hosts")
    .action(async (o: { json?: boolean }) => {
      const hosts = await (await client()).get<HostJson[]>('/hosts');
      if (o.json) return printJson(hosts);
      process.stdout.write(
        table(
          hosts.map((h) => [
            h.id,
            h.state,
            h.address,
            String(h.jobs),
            `${h.capacity.cpu}m`,
            `${h.capacity.memory} MiB`,
            h.reason ?? '',
          ]),
          ['HOST', 'STATE', 'ADDRESS', 'JOBS', 'CPU', 'MEMORY', ''],
        ),
      );
    });

  program
    .command('hosts:drain <host>')
    .description(
      'drain a host: it gets no new dynos and its dynos are started on other hosts, then stopped (undo with hosts:undrain)',
    )
    .option('--reason <why>', 'why, shown by `flotilla hosts`')
    .action(async (host: string, o: { reason?: string }) => {
      const api = await client();
      await step(
        `Draining ${host}`,
        () =>
          api.request<HostJson>('PATCH', `/hosts/${p(host)}`, {
            drain: true,
            ...(o.reason === undefined ? {} : { reason: o.reason }),
          }),
        () => 'done: its dynos move to other hosts (`flotilla hosts` shows its JOBS go to 0)',
      );
    });

  program
    .command('hosts:undrain <host>')
    .description('end the drain of a host: it gets new dynos again')
    .action(async (host: string) => {
      const api = await client();
      await step(`Ending the drain of ${host}`, () =>
        api.request<HostJson>('PATCH', `/hosts/${p(host)}`, { drain: false }),
      );
    });
}
