import type { Dyno, RunInfo, RunOptions } from '@flotilla/controller';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { readJson, validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import type { ApiDeps } from './deps.js';
import { appName, ONE_OFF_NAME, runBody } from './schemas.js';

/** A one-off as `GET /apps/{app}/dynos` lists it: a dyno named `run.4821` with its command. */
export interface OneOffDyno {
  /** The job id (`demo.run.1a2b3c4d5e6f`). */
  readonly id: string;
  /** `run.4821` (`release.1234` for a release phase): stable for the run's life. */
  readonly name: string;
  /** `run`, or `release` for a deploy's release phase. */
  readonly type: 'run' | 'release';
  /** The number in its name. */
  readonly index: number;
  readonly release: string;
  readonly deployment: string;
  /** Empty: it runs on the server that answered, beside its controller. */
  readonly host: '';
  readonly state: 'up';
  /** Present on one-offs only: what tells them from formation dynos. */
  readonly command: string;
  readonly size: string;
  readonly startedAt: number;
  readonly createdAt: number;
}

/**
 * The `ps` names of an app's one-offs, Heroku style: `run.` and four digits taken from the job
 * id, so a name is short and means the same run at every `ps`. A name is kept for its run's
 * life once given: two runs of an app whose ids give the same digits (1 in 9,000) get distinct
 * ones, the one seen later the next free number, and neither changes while both run.
 */
export class OneOffNames {
  /** By app: job id to number, for the runs it listed last. */
  readonly #numbers = new Map<string, Map<string, number>>();

  /** The app's runs as dynos, forgetting the names of runs that ended. */
  dynos(app: string, runs: readonly RunInfo[]): OneOffDyno[] {
    const known = this.#numbers.get(app) ?? new Map<string, number>();
    const next = new Map<string, number>();
    // The numbers given, by type (run.1010 and release.1010 are distinct names).
    const taken = new Map<string, Set<number>>();
    const takenOf = (type: string): Set<number> => {
      let t = taken.get(type);
      if (t === undefined) taken.set(type, (t = new Set()));
      return t;
    };
    for (const r of runs) {
      const n = known.get(r.id);
      if (n !== undefined && !takenOf(r.type).has(n)) {
        next.set(r.id, n);
        takenOf(r.type).add(n);
      }
    }
    for (const r of runs) {
      if (next.has(r.id)) continue;
      const t = takenOf(r.type);
      let n = digits(r.id);
      // Past 9,000 runs of a type at once every 4-digit number is taken: 10000 and up then
      // (it looped for ever; and the taken numbers were rebuilt for each run, O(n²) each).
      for (let tries = 0; t.has(n) && tries < 9000; tries++) n = n === 9999 ? 1000 : n + 1;
      if (t.has(n)) for (n = 10_000; t.has(n); n++);
      next.set(r.id, n);
      t.add(n);
    }
    if (next.size === 0) this.#numbers.delete(app);
    else this.#numbers.set(app, next);
    return runs.map((r) => {
      const n = next.get(r.id) as number;
      return {
        id: r.id,
        name: `${r.type}.${n}`,
        type: r.type,
        index: n,
        release: r.release,
        deployment: r.deployment,
        host: '',
        state: 'up',
        command: r.command,
        size: r.size,
        startedAt: r.startedAt,
        createdAt: r.startedAt,
      };
    });
  }
}

/** 1000 to 9999 from the job id's random suffix (`demo.run.1a2b3c4d5e6f`). */
function digits(id: string): number {
  const hex = /([0-9a-f]{6,})$/.exec(id)?.[1];
  let h = 0;
  if (hex !== undefined) h = parseInt(hex.slice(-8), 16);
  else for (const c of id) h = (h * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return 1000 + (h % 9000);
}

/**
 * `/apps/{app}/dynos`: list with state, host and release, the formation's dynos then the
 * one-offs this server runs (`run.4821`, with their command); DELETE restarts them all
 * (rolling); `DELETE .../{dyno}` stops one one-off; POST runs a one-off command and streams its
 * output back as NDJSON, then its exit.
 */
export function dynoRoutes(routes: Routes, d: ApiDeps): void {
  const names = new OneOffNames();
  const oneOffs = async (app: string, signal: AbortSignal): Promise<OneOffDyno[]> =>
    names.dynos(app, await d.controller.listRuns(app, { signal }));

  routes.on('GET', '/apps/:app/dynos', async ({ params, signal }) => {
    const app = validate(appName, params.app);
    const dynos: (Dyno | OneOffDyno)[] = await d.controller.listDynos(app, { signal });
    return dynos.concat(await oneOffs(app, signal));
  });
  routes.on('DELETE', '/apps/:app/dynos', async ({ params, signal }) =>
    d.controller.restart(validate(appName, params.app), { signal }),
  );
  routes.on('DELETE', '/apps/:app/dynos/:dyno', async ({ params, signal }) => {
    const app = validate(appName, params.app);
    const dyno = params.dyno ?? '';
    if (!ONE_OFF_NAME.test(dyno))
      throw new PaasError(
        PaasErrorCodes.INVALID_REQUEST,
        `${JSON.stringify(dyno.slice(0, 64))} is not a one-off dyno: only one-offs (run.4821) are stopped one by one; scale a process type with ps:scale, restart them all with ps:restart`,
        { status: 422 },
      );
    const run = (await oneOffs(app, signal)).find((r) => r.name === dyno);
    if (run === undefined || !(await d.controller.stopRun(app, run.id, { signal })))
      throw new PaasError(
        PaasErrorCodes.NOT_FOUND,
        `${app} has no one-off ${dyno} on this server: it ended, or another server runs it (see flotilla ps)`,
        { status: 404 },
      );
    return { name: dyno, id: run.id, stopped: true };
  });
  routes.on('POST', '/apps/:app/dynos', async ({ params, req, res, signal }) => {
    const app = validate(appName, params.app);
    const body = await readJson(req, runBody);
    const options: RunOptions = {
      command: body.command,
      signal, // the client going away stops the run
      ...(body.env === undefined ? {} : { env: body.env }),
      ...(body.size === undefined ? {} : { size: body.size }),
      ...(body.release === undefined ? {} : { release: body.release }),
      ...(body.timeout === undefined ? {} : { timeoutMs: body.timeout * 1000 }),
    };
    const handle = await d.controller.run(app, options);
    const out = new ResponseStream(res, 'application/x-ndjson');
    await out.json({ id: handle.id });
    for await (const line of handle.output) await out.json(line);
    await out.json({ exit: await handle.exit });
    out.end();
  });
}
