import { constants } from 'node:os';
import type { Command } from 'commander';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { quoted } from '../../internal/quoted.js';
import { MAX_RUN_TIMEOUT_S, MAX_SCALE, ONE_OFF_NAME } from '../../server/api/schemas.js';
import { wholeNumber } from '../numbers.js';
import { ago, printJson, step, table } from '../output.js';
import { appContext, appOption, jsonOption, p, type AppOptions } from './context.js';
import { drainingNotes, type HostJson } from './hosts.js';

interface DynoJson {
  id: string;
  name: string;
  type: string;
  state: string;
  release: string;
  host: string;
  startedAt?: number;
  createdAt: number;
  message?: string;
  /** One-offs only (`run.4821`): what tells them from the formation's dynos. */
  command?: string;
  size?: string;
}

interface RunLine {
  id?: string;
  stream?: 'stdout' | 'stderr' | 'system';
  line?: string;
  exit?: { code: number | null; signal: string | null; message: string };
}

interface FormationJson {
  type: string;
  quantity: number;
}

/**
 * A line per process type with fewer dynos up than its formation asks for, saying why: dynos
 * that crashed (restarted after a backoff), dynos on their way up, and dynos that cannot be
 * placed (they wait for room). Without it `ps` just listed fewer of them.
 */
export function missingDynos(
  formation: readonly FormationJson[],
  dynos: readonly Pick<DynoJson, 'name' | 'type' | 'state'>[],
): string {
  let out = '';
  for (const f of formation) {
    const mine = dynos.filter((d) => d.type === f.type);
    const up = mine.filter((d) => d.state === 'up').length;
    if (up >= f.quantity) continue;
    const crashed = mine.filter((d) => d.state === 'crashed').map((d) => d.name);
    const coming = mine.filter((d) => d.state === 'pending' || d.state === 'starting').length;
    const unplaced = f.quantity - up - crashed.length - coming;
    const why: string[] = [];
    if (crashed.length > 0)
      why.push(
        `${crashed.join(', ')} crashed: see \`flotilla logs -p ${f.type}\`; restarted after a backoff`,
      );
    if (coming > 0) why.push(`${coming} starting`);
    if (unplaced > 0)
      why.push(
        `${unplaced} not placed: one that finds no host with room waits: see \`flotilla hosts\` and the server log`,
      );
    out += `${f.type}: ${f.quantity} wanted, ${up} up (${why.join('; ')})\n`;
  }
  return out;
}

/**
 * A command as one line of a terminal: control characters (newlines, escapes, the 8-bit ones
 * such as CSI U+009B), line separators and bidi overrides shown as `\n`, `\x1b`, `\u202e`.
 */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16)}`;
  });
}

/** `2026/12/02 10:00:00 +0000 (~ 5s ago)`, as Heroku's `ps` says since when a one-off is up. */
function since(ms: number, now = Date.now()): string {
  const t = new Date(ms).toISOString();
  return `${t.slice(0, 10).replaceAll('-', '/')} ${t.slice(11, 19)} +0000 (~ ${ago(ms, now)})`;
}

/**
 * The one-offs' sections of `ps`, after the formation's, as Heroku prints them:
 * `=== run: one-off processes (1)` then `run.4821 (standard): up <since>: <command>`; a release
 * phase running has its own section.
 */
export function oneOffSections(dynos: readonly DynoJson[], now = Date.now()): string {
  let out = '';
  for (const [type, title] of [
    ['run', 'one-off processes'],
    ['release', 'release phase'],
  ] as const) {
    const mine = dynos.filter((d) => d.command !== undefined && d.type === type);
    if (mine.length === 0) continue;
    out += `=== ${type}: ${title} (${mine.length})\n`;
    for (const d of mine)
      out += `${d.name} (${d.size ?? '?'}): ${d.state} ${since(d.startedAt ?? d.createdAt, now)}: ${oneLine(d.command ?? '')}\n`;
  }
  return out;
}

/**
 * The shell command line of `run`'s arguments: one argument is a command line as it is
 * (`run 'rake db:migrate && echo done'`); several are words, each quoted for the shell unless
 * plain (`run printf '%s' "it's"` prints it's), as a shell would have passed them.
 */
export function commandLine(args: readonly string[]): string {
  if (args.length === 1) return args[0] ?? '';
  return args
    .map((a) => (/^[A-Za-z0-9_\-+=.,:/@%]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

/** `ps`, `ps:scale`, `ps:restart`, `ps:stop`, `run`. */
export function psCommands(program: Command): void {
  jsonOption(appOption(program.command('ps')))
    .description("list an app's dynos with their state, host and release")
    .action(async (o: AppOptions) => {
      const { api, app } = await appContext(o);
      const [dynos, formation] = await Promise.all([
        api.get<DynoJson[]>(`/apps/${p(app)}/dynos`),
        o.json ? [] : api.get<FormationJson[]>(`/apps/${p(app)}/formation`),
      ]);
      if (o.json) return printJson(dynos);
      // The hosts of this app's dynos only (`GET /hosts` would list the whole cluster's jobs);
      // one gone meanwhile is left out.
      const hostIds = [...new Set(dynos.map((d) => d.host).filter((h) => h !== ''))];
      const hosts = (
        await Promise.all(
          hostIds.map((h) =>
            api.get<HostJson>(`/hosts/${p(h)}`).catch((err: unknown) => {
              if ((err as { status?: number }).status === 404) return undefined;
              throw err;
            }),
          ),
        )
      ).filter((h) => h !== undefined);
      const formationDynos = dynos.filter((d) => d.command === undefined);
      const short = missingDynos(formation, formationDynos) + drainingNotes(formationDynos, hosts);
      const oneOffs = oneOffSections(dynos);
      if (formationDynos.length === 0) {
        process.stdout.write(
          oneOffs === '' ? `No dynos on ${app}\n${short}` : `${short}${oneOffs}`,
        );
        return;
      }
      process.stdout.write(
        table(
          formationDynos.map((d) => [
            d.name,
            d.state,
            d.release,
            d.host,
            ago(d.startedAt ?? d.createdAt),
            d.message ?? '',
          ]),
          ['DYNO', 'STATE', 'RELEASE', 'HOST', 'SINCE', ''],
        ) +
          short +
          (oneOffs === '' ? '' : `\n${oneOffs}`),
      );
    });

  jsonOption(appOption(program.command('ps:scale <changes...>')))
    .alias('scale')
    .description('scale process types: web=3 worker=1, or web=2:large for a size')
    .action(async (changes: string[], o: AppOptions) => {
      const updates = changes.map((c) => {
        const m = /^([A-Za-z0-9][A-Za-z0-9_-]*)=(\d+)?(?::([A-Za-z0-9_-]+))?$/.exec(c);
        if (m === null || (m[2] === undefined && m[3] === undefined))
          throw new PaasError(
            PaasErrorCodes.INVALID_REQUEST,
            `${c} is not type=N or type=N:size (web=3)`,
          );
        return {
          type: m[1] ?? '',
          ...(m[2] === undefined
            ? {}
            : {
                quantity: wholeNumber(m[2], {
                  option: c,
                  what: `a count of ${m[1] ?? ''} dynos`,
                  min: 0,
                  max: MAX_SCALE,
                  example: `${m[1] ?? 'web'}=3`,
                }),
              }),
          ...(m[3] === undefined ? {} : { size: m[3] }),
        };
      });
      const seen = new Set<string>();
      for (const u of updates) {
        if (seen.has(u.type))
          throw new PaasError(
            PaasErrorCodes.INVALID_REQUEST,
            `${u.type} is given twice: give each process type once (web=3 worker=1)`,
          );
        seen.add(u.type);
      }
      const { api, app } = await appContext(o);
      const formation = await step(`Scaling ${app}`, () =>
        api.request<{ type: string; quantity: number; size: string }[]>(
          'PATCH',
          `/apps/${p(app)}/formation`,
          {
            updates,
          },
        ),
      );
      if (o.json) return printJson(formation);
      process.stdout.write(
        formation.map((f) => `${f.type}=${f.quantity}:${f.size}`).join(' ') + '\n',
      );
    });

  appOption(program.command('ps:restart [dyno]'))
    .alias('restart')
    .description("restart an app's dynos (rolling)")
    .action(async (dyno: string | undefined, o: AppOptions) => {
      // Restarting one dyno is not something the server does: refused rather than restarting all.
      if (dyno !== undefined)
        throw new PaasError(
          PaasErrorCodes.INVALID_REQUEST,
          ONE_OFF_NAME.test(dyno)
            ? `${dyno} is a one-off: it is not restarted; stop it with \`flotilla ps:stop ${dyno}\` and run its command again`
            : `ps:restart restarts all of the app's dynos (rolling) and takes no dyno: restarting ${quoted(dyno)} alone is not supported`,
        );
      const { api, app } = await appContext(o);
      await step(`Restarting ${app} (one dyno at a time, waiting for each to be ready)`, () =>
        api.request('DELETE', `/apps/${p(app)}/dynos`),
      );
    });

  jsonOption(appOption(program.command('ps:stop <dyno>')))
    .alias('stop')
    .description('stop a one-off dyno (run.4821) of the app; it ends as if interrupted')
    .action(async (dyno: string, o: AppOptions) => {
      if (!ONE_OFF_NAME.test(dyno))
        throw new PaasError(
          PaasErrorCodes.INVALID_REQUEST,
          `${quoted(dyno)} is not a one-off dyno (run.4821): a formation's dynos are scaled with \`flotilla ps:scale\`, restarted with \`flotilla ps:restart\``,
        );
      const { api, app } = await appContext(o);
      const done = await step(`Stopping ${dyno} on ${app}`, () =>
        api.request<{ name: string; id: string }>('DELETE', `/apps/${p(app)}/dynos/${p(dyno)}`),
      );
      if (o.json) printJson(done);
    });

  appOption(program.command('run <command...>'))
    .description(
      "run a one-off command in the app's environment; its output streams back (options run does not know are the command's: run ls -la -a demo)",
    )
    // As Heroku's: run's own options anywhere, any other option is the command's.
    .allowUnknownOption()
    .option('-e, --env <pairs>', 'extra config vars for this run: KEY=value;KEY2=value2')
    .option('-s, --size <size>', 'the dyno size')
    .option('--timeout <seconds>', 'stop it after this long')
    .action(
      async (
        command: string[],
        o: AppOptions & { env?: string; size?: string; timeout?: string },
      ) => {
        const timeout =
          o.timeout === undefined
            ? undefined
            : wholeNumber(o.timeout, {
                option: '--timeout',
                what: 'a number of seconds',
                min: 1,
                max: MAX_RUN_TIMEOUT_S,
                example: '--timeout 600',
              });
        const { api, app } = await appContext(o);
        const env: Record<string, string> = {};
        for (const pair of o.env?.split(';').filter(Boolean) ?? []) {
          const eq = pair.indexOf('=');
          if (eq <= 0)
            throw new PaasError(PaasErrorCodes.INVALID_REQUEST, `--env: ${pair} is not KEY=value`);
          env[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        process.stderr.write(`Running ${commandLine(command)} on ${app}... `);
        let exit: RunLine['exit'];
        // The platform's own lines (the exit, dropped lines) go to stderr: stdout is the
        // command's output alone, so `flotilla run cat x > copy` copies x.
        let lastSystem: string | undefined;
        let id: string | undefined;
        try {
          for await (const text of api.lines(
            'POST',
            `/apps/${p(app)}/dynos`,
            {
              command: commandLine(command),
              ...(Object.keys(env).length > 0 ? { env } : {}),
              ...(o.size === undefined ? {} : { size: o.size }),
              ...(timeout === undefined ? {} : { timeout }),
            },
            ac.signal,
          )) {
            const l = JSON.parse(text) as RunLine;
            if (l.id !== undefined) process.stderr.write(`up, ${(id = l.id)}\n`);
            else if (l.line !== undefined) {
              if (l.stream === 'system') lastSystem = l.line;
              (l.stream === 'stdout' ? process.stdout : process.stderr).write(`${l.line}\n`);
            } else if (l.exit !== undefined) exit = l.exit;
          }
        } catch (err) {
          if (!ac.signal.aborted) throw err;
          // Ctrl-C: the server stops the one-off when the call goes away.
          process.stderr.write(`\n${id ?? 'the run'} stopped (interrupted)\n`);
          process.exitCode = 130;
          return;
        }
        if (exit === undefined)
          throw new PaasError(PaasErrorCodes.API, 'the run ended without an exit status');
        if (exit.code !== 0) {
          // Said once: the driver's last line is often this very message.
          if (exit.message !== lastSystem) process.stderr.write(`${exit.message}\n`);
          // Ended by a signal (ps:stop, --timeout): 128 + its number, as a shell says it.
          const signal =
            exit.signal === null ? undefined : constants.signals[exit.signal as NodeJS.Signals];
          process.exitCode = exit.code ?? (signal === undefined ? 1 : 128 + signal);
        }
      },
    );
}
