import { Command } from 'commander';
import { VERSION } from '../version.js';
import { appCommands } from './commands/apps.js';
import { buildCommands } from './commands/builds.js';
import { configCommands } from './commands/config.js';
import { domainCommands } from './commands/domains.js';
import { gitCommands } from './commands/git.js';
import { hostCommands } from './commands/hosts.js';
import { logCommands } from './commands/logs.js';
import { loginCommands } from './commands/login.js';
import { psCommands } from './commands/ps.js';
import { releaseCommands } from './commands/releases.js';
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
  loginCommands(program);
  appCommands(program);
  configCommands(program);
  psCommands(program);
  logCommands(program);
  releaseCommands(program);
  domainCommands(program);
  buildCommands(program);
  gitCommands(program);
  hostCommands(program);
  return program;
}
