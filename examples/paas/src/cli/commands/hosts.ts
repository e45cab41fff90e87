import type { Command } from 'commander';
import { MAX_DRAIN_DEADLINE_MS } from '@flotilla/cluster';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { quoted } from '../../internal/quoted.js';
import { printJson, step, table } from '../output.js';
import { client, jsonOption, p } from './context.js';

/** A host as `GET /hosts` gives it. */
export interface HostJson {
  id: string;
  address: string;
  state: string;
  capacity: { cpu: number; memory: number };
  jobs: number;
  drain: boolean;
  /** When the drain stops waiting for replacements, ms since the epoch. */
  drain_deadline?: number;
  /** The deadline has passed: the jobs left were stopped. */
  drain_forced?: boolean;
  eligible: boolean;
  reason?: string;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration as `hosts:drain --deadline` takes it, in ms: one or more numbers with a unit
 * (`ms`, `s`, `m`, `h`, `d`), as Nomad's `-deadline` (`10m`, `1h30m`, `90s`). From 1 ms to
 * 365 days; anything else is `FLOTILLA_PAAS_INVALID_REQUEST` saying what to give.
 */
export function parseDuration(text: string, option = '--deadline'): number {
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(text)
    ? [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)]
    : [];
  const ms = Math.round(
    parts.reduce((sum, [, n, unit]) => sum + Number(n) * (UNITS[unit as string] as number), 0),
  );
  if (parts.length === 0 || !(ms >= 1 && ms <= MAX_DRAIN_DEADLINE_MS)) {
    throw new PaasError(
      PaasErrorCodes.INVALID_REQUEST,
      `${option} ${quoted(text)} is not a duration from 1ms to 365d: give a number with its unit, such as 10m, 1h30m or 90s`,
    );
  }
  return ms;
}

/** A time (ms since the epoch) in UTC to the second: `2026-12-02T05:15:00Z`. */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The drain column of `hosts`: its deadline, and whether it has passed. */
export function drainColumn(
  h: Pick<HostJson, 'drain' | 'drain_deadline' | 'drain_forced'>,
): string {
  if (!h.drain || h.drain_deadline === undefined) return '';
  const at = isoSeconds(h.drain_deadline);
  return h.drain_forced === true ? `deadline ${at} passed: forced` : `deadline ${at}`;
}

/**
 * The lines `ps` adds for an app's dynos on draining hosts: each is stopped once its
 * replacement is up elsewhere, or when the drain's deadline passes, whichever comes first.
 */
export function drainingNotes(
  dynos: readonly { name: string; host: string; state: string }[],
  hosts: readonly Pick<HostJson, 'id' | 'state' | 'drain_deadline' | 'drain_forced'>[],
): string {
  let out = '';
  for (const h of hosts) {
    if (h.state !== 'draining') continue;
    const names = dynos
      .filter((d) => d.host === h.id && d.state !== 'down' && d.state !== 'crashed')
      .map((d) => d.name);
    if (names.length === 0) continue;
    const at = h.drain_deadline === undefined ? undefined : isoSeconds(h.drain_deadline);
    const what =
      at === undefined
        ? 'each stops once its replacement is up elsewhere (no deadline)'
        : h.drain_forced === true
          ? `its deadline ${at} passed: stopped, replacements up or not (forced)`
          : `each stops once its replacement is up elsewhere, or at its deadline ${at} regardless`;
    out += `${names.join(', ')} on ${h.id}, draining: ${what}\n`;
  }
  return out;
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
            drainColumn(h),
          ]),
          ['HOST', 'STATE', 'ADDRESS', 'JOBS', 'CPU', 'MEMORY', '', 'DRAIN'],
        ),
      );
    });

  program
    .command('hosts:drain <host>')
    .description(
      'drain a host: it gets no new dynos and its dynos are started on other hosts, each stopped once its replacement is up (undo with hosts:undrain)',
    )
    .option('--reason <why>', 'why, shown by `flotilla hosts`')
    .option(
      '--deadline <duration>',
      'stop the dynos still there after this long (10m, 1h30m) even if their replacements are not up (no room, a crashing release); default: wait for them however long it takes',
    )
    .action(async (host: string, o: { reason?: string; deadline?: string }) => {
      const deadlineMs = o.deadline === undefined ? undefined : parseDuration(o.deadline);
      const api = await client();
      await step(
        `Draining ${host}`,
        () =>
          api.request<HostJson>('PATCH', `/hosts/${p(host)}`, {
            drain: true,
            ...(o.reason === undefined ? {} : { reason: o.reason }),
            ...(deadlineMs === undefined ? {} : { deadline_ms: deadlineMs }),
          }),
        (h) =>
          h.drain_deadline === undefined
            ? 'done: its dynos move to other hosts (`flotilla hosts` shows its JOBS go to 0)'
            : `done: its dynos move to other hosts; those left at ${new Date(h.drain_deadline).toISOString()} are stopped anyway`,
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
