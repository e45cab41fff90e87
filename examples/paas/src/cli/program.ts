import { Command } from 'commander';
import { VERSION } from '../version.js';
import { serverCommands } from './commands/server.js';

/** The `flotilla` program with every command. */
export function buildProgram(): Command {
  const program = new Command('flotilla')
    .description(
      'Flotilla: your own platform-as-a-service. `flotilla server` runs it; the other commands talk to it.',
    )
    .version(VERSION)
    .showHelpAfterError();
  serverCommands(program);
  return program;
}
