import type { Command } from 'commander';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { resolveServerConfig, type ServerConfig, type ServerFlags } from '../../server/config.js';

/** Adds `server`, `host` and `router`: the processes of a Flotilla platform. */
export function serverCommands(program: Command): void {
  const common = (c: Command): Command =>
    c
      .option('--data-dir <dir>', 'data directory (FLOTILLA_DATA_DIR, default ./.flotilla)')
      .option(
        '--store <url>',
        'sqlite:<path> or etcd://host:port[,host:port][/prefix] (FLOTILLA_STORE)',
      )
      .option('--token <token>', 'API token (FLOTILLA_TOKEN; default: kept in the data directory)')
      .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', undefined);
  /** The options of the host agent, which `server` embeds and `host` runs alone. */
  const hostOptions = (c: Command): Command =>
    c
      .option('--driver <driver>', 'process or docker (FLOTILLA_DRIVER, default process)')
      .option('--host-id <id>', "this machine's host id (FLOTILLA_HOST_ID, default the hostname)")
      .option(
        '--job-ports <from-to>',
        'ports handed to jobs (FLOTILLA_JOB_PORTS, default 20000-20999)',
      )
      .option(
        '--host-cpu <millis>',
        'CPU millis this host offers dynos, 1000 per core (FLOTILLA_HOST_CPU; default 4000 per core with the process driver, 1000 with docker)',
      )
      .option(
        '--host-memory <MiB>',
        "memory this host offers dynos (FLOTILLA_HOST_MEMORY; default the machine's)",
      );

  hostOptions(common(program.command('server')))
    .description(
      'run the platform: API, scheduler, a host agent and the router (embedded: SQLite, no Docker)',
    )
    .option('--api-host <host>', 'API address (FLOTILLA_API_HOST, default 127.0.0.1)')
    .option(
      '--advertise-host <host>',
      'the address other machines reach this one at, registered for the API, host and jobs (FLOTILLA_ADVERTISE_HOST; default --api-host; needed when that is 0.0.0.0)',
    )
    .option('--api-port <port>', 'API port (FLOTILLA_API_PORT, default 7700; 0: any free port)')
    .option('--router-host <host>', 'router address (FLOTILLA_ROUTER_HOST, default 127.0.0.1)')
    .option(
      '--router-port <port>',
      'router port (FLOTILLA_ROUTER_PORT, default 8080; 0: any free port)',
    )
    .option(
      '--deploy-min-healthy <ms>',
      'how long each new dyno of a deploy must stay up before it counts; one that crashes meanwhile fails the deploy, which rolls back (FLOTILLA_DEPLOY_MIN_HEALTHY_MS, default 0)',
    )
    .option(
      '--stop-jobs',
      'stop every job when the server exits (default: they keep running and are adopted at the next start)',
    )
    .option('--no-router', 'do not run a router in this process')
    .option('--no-host', 'do not run a host agent in this process')
    .action(async (flags: ServerFlags & { router: boolean; host: boolean }) => {
      const config = resolveServerConfig(flags, process.env, {
        api: true,
        scheduler: true,
        host: flags.host,
        router: flags.router,
      });
      await runServer(config, 'server');
    });

  hostOptions(common(program.command('host')))
    .description('run a host agent on this machine, joining the cluster in --store')
    .option(
      '--api-host <host>',
      "address of this host's log endpoint (FLOTILLA_API_HOST, default 127.0.0.1)",
    )
    .option(
      '--advertise-host <host>',
      'the address other machines reach this host and its jobs at (FLOTILLA_ADVERTISE_HOST; default --api-host; needed when that is 0.0.0.0)',
    )
    .option(
      '--api-port <port>',
      "port of this host's log endpoint (FLOTILLA_API_PORT, default 7700; 0: any)",
    )
    .option('--stop-jobs', 'stop every job when the agent exits')
    .action(async (flags: ServerFlags) => {
      const config = resolveServerConfig(flags, process.env, {
        api: false,
        scheduler: false,
        host: true,
        router: false,
      });
      if (config.token === undefined)
        throw new PaasError(
          PaasErrorCodes.INVALID_OPTIONS,
          "flotilla host needs the API server's token (--token or FLOTILLA_TOKEN): it fetches slugs from the API with it",
        );
      if (config.store.kind !== 'etcd')
        throw new PaasError(
          PaasErrorCodes.INVALID_OPTIONS,
          'flotilla host joins a cluster: give the cluster store with --store etcd://host:port',
        );
      await runServer(config, 'host');
    });

  common(program.command('router'))
    .description('run a router, its backends found in --store')
    .option('--router-host <host>', 'address (FLOTILLA_ROUTER_HOST, default 127.0.0.1)')
    .option('--router-port <port>', 'port (FLOTILLA_ROUTER_PORT, default 8080)')
    .action(async (flags: ServerFlags) => {
      const config = resolveServerConfig(flags, process.env, {
        api: false,
        scheduler: false,
        host: false,
        router: true,
      });
      await runServer(config, 'router');
    });
}

async function runServer(config: ServerConfig, what: string): Promise<void> {
  // Loaded here, so that client commands do not load every package of the platform.
  const [{ FlotillaServer }, { pino }] = await Promise.all([
    import('../../server/server.js'),
    import('pino'),
  ]);
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2));
  const server = await FlotillaServer.start(config, logger, (line) =>
    process.stdout.write(`${line}\n`),
  );
  const i = server.info;
  const lines = [`flotilla ${what} ready (pid ${process.pid})`];
  if (i.apiUrl !== undefined) lines.push(`  API       ${i.apiUrl}`);
  if (i.routerUrl !== undefined)
    lines.push(`  router    ${i.routerUrl.replace('://', '://<app>.')}`);
  if (i.tokenPath !== undefined) lines.push(`  token     ${i.tokenPath}`);
  else if (config.roles.api) lines.push('  token     as given (--token or FLOTILLA_TOKEN)');
  if (i.hostId !== undefined) lines.push(`  host      ${i.hostId}`);
  lines.push(`  store     ${i.store}`);
  lines.push(`  data      ${i.dataDir}`);
  if (i.apiUrl !== undefined) {
    lines.push('');
    lines.push(
      i.tokenPath !== undefined
        ? `Log in with: flotilla login --url ${i.apiUrl} --token-file ${i.tokenPath}`
        : `Log in with: flotilla login --url ${i.apiUrl}`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');

  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        process.stdout.write(`${sig} again: exiting now\n`);
        process.exit(1);
      }
      process.stdout.write(
        `${sig}: shutting down${config.stopJobsOnExit ? ', stopping every job' : '; apps keep running and are adopted at the next start'}\n`,
      );
      void server.close().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  logger.flush();
}
