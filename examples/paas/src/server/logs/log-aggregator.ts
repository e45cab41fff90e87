import type { Logger } from '@flotilla/core';
import type { ControllerEvent, Dyno, JobLogSource, JobRef } from '@flotilla/controller';
import type { Driver, LogLine } from '@flotilla/host';
import { AsyncQueue } from '../../internal/async-queue.js';
import { formatLogLine } from './format.js';

/** Where a host's jobs' logs are read: the local driver, or the host's log endpoint. */
export interface LogAggregatorOptions {
  /** This process's host id, whose jobs are read from `driver`. */
  readonly localHostId: string | undefined;
  /** Reads the local jobs' logs: the host agent (which keeps ended jobs' last lines). */
  readonly driver: Pick<Driver, 'logs'> | undefined;
  /** The app's dynos now. */
  readonly dynos: (app: string, signal: AbortSignal | undefined) => Promise<Dyno[]>;
  /** The app's events from now on (for dynos that start while following). */
  readonly events: (app: string, signal: AbortSignal) => AsyncIterable<ControllerEvent>;
  /** The address (`host:port`) of a host's log endpoint, for jobs on other hosts. */
  readonly hostAddress: (
    hostId: string,
    signal: AbortSignal | undefined,
  ) => Promise<string | undefined>;
  /** The token the other hosts' log endpoints take. */
  readonly token: string;
  readonly logger: Logger;
}

/** How many ended dynos of each app {@link LogAggregator} remembers for their last lines. */
export const ENDED_PER_APP = 20;

/** A dyno whose lines can be read: its job id, host, type and name (`web.1`). */
interface LogSource {
  readonly id: string;
  readonly host: string;
  readonly type: string;
  readonly name: string;
}

/** What {@link LogAggregator.read} reads. */
export interface LogReadRequest {
  /** How many of the newest lines first. */
  readonly lines: number;
  /** Then keep following, including dynos that start meanwhile, until the app is destroyed. */
  readonly follow: boolean;
  readonly type?: string;
  /** One dyno (`web.1`). */
  readonly dyno?: string;
  readonly signal: AbortSignal;
}

/**
 * The app's logs, from every host its dynos run on: the newest lines of each dyno merged by
 * time, then (following) lines as they come. Also the controller's {@link JobLogSource}, for the
 * last lines of a job that failed a deploy.
 */
export class LogAggregator implements JobLogSource {
  readonly #o: LogAggregatorOptions;
  /** Dynos that ended lately, by app then job id: their agents keep their last lines. */
  readonly #ended = new Map<string, Map<string, LogSource>>();

  constructor(options: LogAggregatorOptions) {
    this.#o = options;
  }

  /**
   * Takes the controller's events (`job.state`, `app.destroyed`): a dyno that ended (crashed,
   * stopped) is remembered, so that {@link read} still prints its last lines once another job
   * replaced it (a crash's last words were gone from `flotilla logs` as soon as the dyno was
   * restarted). The last {@link ENDED_PER_APP} of each app are kept.
   */
  observe(ev: ControllerEvent): void {
    if (ev.type === 'app.destroyed') {
      this.#ended.delete(ev.app);
      return;
    }
    if (ev.type !== 'job.state' || (ev.state !== 'crashed' && ev.state !== 'down')) return;
    let jobs = this.#ended.get(ev.app);
    if (jobs === undefined) this.#ended.set(ev.app, (jobs = new Map()));
    jobs.delete(ev.jobId);
    jobs.set(ev.jobId, {
      id: ev.jobId,
      host: ev.host,
      type: ev.processType,
      name: `${ev.processType}.${ev.index}`,
    });
    for (const id of jobs.keys()) {
      if (jobs.size <= ENDED_PER_APP) break;
      jobs.delete(id);
    }
  }

  /** The last `lines` lines of one job, as text. */
  async tail(
    job: JobRef,
    lines: number,
    options: { readonly signal?: AbortSignal },
  ): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const l of this.#jobLines(job.hostId, job.id, lines, false, options.signal))
        out.push(l.line);
    } catch (err) {
      this.#o.logger.debug({ err, job: job.id }, 'no logs for a failed job');
    }
    return out.slice(-lines);
  }

  /** The app's log lines, formatted as Heroku prints them. */
  async *read(app: string, r: LogReadRequest): AsyncGenerator<string> {
    const matches = (type: string, name: string): boolean =>
      (r.type === undefined || type === r.type) && (r.dyno === undefined || name === r.dyno);
    const dynos = (await this.#o.dynos(app, r.signal)).filter((d) => matches(d.type, d.name));
    // Dynos that ended lately and are no longer listed (replaced) are read too.
    const listed = new Set(dynos.map((d) => d.id));
    const ended = [...(this.#ended.get(app)?.values() ?? [])].filter(
      (d) => !listed.has(d.id) && matches(d.type, d.name),
    );
    // The newest lines of each dyno, merged by time.
    const recent: { l: LogLine; name: string }[] = [];
    await Promise.all(
      [...dynos, ...ended].map(async (d) => {
        try {
          for await (const l of this.#jobLines(d.host, d.id, r.lines, false, r.signal))
            recent.push({ l, name: d.name });
        } catch (err) {
          this.#o.logger.debug({ err, job: d.id }, 'cannot read a dyno log');
        }
      }),
    );
    recent.sort((a, b) => a.l.time - b.l.time || a.l.seq - b.l.seq);
    for (const { l, name } of recent.slice(Math.max(0, recent.length - r.lines)))
      yield formatLogLine(l, name);
    if (!r.follow) return;

    const queue = new AsyncQueue<string>();
    const followed = new Set<string>();
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    r.signal.addEventListener('abort', stop, { once: true });
    const follow = (host: string, id: string, name: string, fromStart: boolean): void => {
      if (followed.has(id)) return;
      followed.add(id);
      void (async () => {
        try {
          // Follow from the end (tail 0) for dynos already printed, from the start for new ones.
          for await (const l of this.#jobLines(host, id, fromStart ? 1500 : 0, true, ac.signal))
            queue.push(formatLogLine(l, name));
        } catch (err) {
          if (!ac.signal.aborted) this.#o.logger.debug({ err, job: id }, 'a followed log ended');
        }
      })();
    };
    for (const d of dynos) follow(d.host, d.id, d.name, false);
    void (async () => {
      try {
        for await (const ev of this.#o.events(app, ac.signal)) {
          // Nothing more will come: the follower ends (it kept the stream open for good).
          if (ev.type === 'app.destroyed') {
            queue.end();
            return;
          }
          if (ev.type !== 'job.state' || (ev.state !== 'starting' && ev.state !== 'up')) continue;
          const fresh = (await this.#o.dynos(app, ac.signal)).find((d) => d.id === ev.jobId);
          if (fresh !== undefined && matches(fresh.type, fresh.name))
            follow(fresh.host, fresh.id, fresh.name, true);
        }
      } catch (err) {
        if (!ac.signal.aborted) queue.fail(err);
      }
    })();
    try {
      for await (const line of queue.drain(ac.signal)) yield line;
    } finally {
      r.signal.removeEventListener('abort', stop);
      ac.abort();
    }
  }

  async *#jobLines(
    hostId: string,
    jobId: string,
    tail: number,
    follow: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<LogLine> {
    if (hostId === this.#o.localHostId && this.#o.driver !== undefined) {
      yield* this.#o.driver.logs(jobId, {
        tail,
        follow,
        ...(signal === undefined ? {} : { signal }),
      });
      return;
    }
    const addr = await this.#o.hostAddress(hostId, signal);
    if (addr === undefined) return;
    const url = `http://${addr}/internal/jobs/${encodeURIComponent(jobId)}/logs?tail=${tail}&follow=${follow}`;
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${this.#o.token}` },
      ...(signal === undefined ? {} : { signal }),
    });
    if (!res.ok || res.body === null) return;
    let rest = '';
    for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const text = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (text !== '') yield JSON.parse(text) as LogLine;
      }
    }
  }
}
