import type { Command } from 'commander';
import { printJson, table } from '../output.js';
import { client, jsonOption } from './context.js';

interface HostJson {
  id: string;
  address: string;
  state: string;
  capacity: { cpu: number; memory: number };
}

/** `hosts`. */
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
            `${h.capacity.cpu}m`,
            `${h.capacity.memory} MiB`,
          ]),
          ['HOST', 'STATE', 'ADDRESS', 'CPU', 'MEMORY'],
        ),
      );
    });
}
