import { request } from 'node:http';
import { connect } from 'node:net';
import {
  type Clock,
  type Logger,
  silentLogger,
  systemClock,
  type TimerHandle,
} from '@flotilla/core';
import type { HealthCheck } from '@flotilla/cluster';
import { HostError, HostErrorCodes } from './errors.js';

/** A health check with every default applied. */
export interface ResolvedHealthCheck {
  readonly type: 'tcp' | 'http';
  /** For http: the path requested. */
  readonly path: string;
  /** For http: the status that means healthy; undefined means any 2xx or 3xx. */
  readonly status: number | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failures that make a ready job not ready. */
  readonly threshold: number;
  /** After start, failures are not counted for this long. */
  readonly graceMs: number;
}

/** Defaults for what a release's health check leaves out. */
export const HEALTH_CHECK_DEFAULTS = {
  intervalMs: 1000,
  timeoutMs: 1000,
  threshold: 3,
  graceMs: 30_000,
} as const;

/**
 * The check a process type gets: the release's own, with defaults filled in; for `web` without
 * one, tcp on its port (as Heroku routes to `web` once it binds `PORT`); for other types
 * without one, none (they count as up once started, and are not published).
 */
export function resolveHealthCheck(
  type: string,
  check: HealthCheck | undefined,
): ResolvedHealthCheck | undefined {
  if (check === undefined && type !== 'web') return undefined;
  const c: HealthCheck = check ?? { type: 'tcp' };
  return {
    type: c.type,
    path: c.type === 'http' ? c.path : '/',
    status: c.type === 'http' ? c.status : undefined,
    intervalMs: c.intervalMs ?? HEALTH_CHECK_DEFAULTS.intervalMs,
    timeoutMs: c.timeoutMs ?? HEALTH_CHECK_DEFAULTS.timeoutMs,
    threshold: c.threshold ?? HEALTH_CHECK_DEFAULTS.threshold,
    graceMs: c.graceMs ?? HEALTH_CHECK_DEFAULTS.graceMs,
  };
}

/** The outcome of one probe. */
export interface ProbeResult {
  readonly ok: boolean;
  /** What was seen, for humans: `connection refused`, `HTTP 503`, `timed out after 1000 ms`. */
  readonly message: string;
}

/** Probes a job once on 127.0.0.1:`port`. Never rejects; leaves no socket open once settled. */
export function probe(check: ResolvedHealthCheck, port: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let release = (): void => undefined;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A check that timed out must not leave its connection or request behind.
      release();
      resolve(r);
    };
    const failed = (err: NodeJS.ErrnoException): void =>
      done({
        ok: false,
        message: err.code === 'ECONNREFUSED' ? `nothing listens on port ${port}` : err.message,
      });
    const timer = setTimeout(
      () => done({ ok: false, message: `timed out after ${check.timeoutMs} ms` }),
      check.timeoutMs,
    );
    try {
      if (check.type === 'tcp') {
        const socket = connect({ host: '127.0.0.1', port });
        release = () => socket.destroy();
        socket.once('connect', () =>
          done({ ok: true, message: `port ${port} accepts connections` }),
        );
        socket.once('error', failed);
        return;
      }
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: check.path,
          method: 'GET',
          headers: { 'user-agent': 'flotilla-health' },
          // One connection per check, closed after it: no pooled sockets between checks.
          agent: false,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const ok =
            check.status === undefined ? status >= 200 && status < 400 : status === check.status;
          done({ ok, message: `GET ${check.path} answered HTTP ${status}` });
        },
      );
      release = () => req.destroy();
      req.once('error', failed);
      req.end();
    } catch (err) {
      // A bad port or path throws synchronously: a failed check, not a rejection.
      failed(err as NodeJS.ErrnoException);
    }
  });
}

/** What a {@link HealthMonitor} reports. */
export interface HealthEvents {
  /** The check passed: the job is ready (first time, or again after `unready`). */
  readonly ready: (result: ProbeResult) => void;
  /** A ready job failed `threshold` checks in a row: it is not ready any more. */
  readonly unready: (result: ProbeResult) => void;
  /**
   * The job never passed its check within the grace period and then failed `threshold` in a
   * row (Heroku's R10 boot timeout): the agent stops it and reports it crashed. The monitor
   * stops itself before calling it.
   */
  readonly bootTimeout: (result: ProbeResult) => void;
  /** Every probe's outcome, before any of the verdicts above (for status pages and logs). */
  readonly checked?: (result: ProbeResult) => void;
}

/** Options of {@link HealthMonitor}. */
export interface HealthMonitorOptions {
  readonly check: ResolvedHealthCheck;
  /** The job's port on 127.0.0.1. */
  readonly port: number;
  /** Schedules the checks (default: the system clock); probes themselves time out in real time. */
  readonly clock?: Clock;
  readonly on: HealthEvents;
  /** A pino-compatible logger, told when a callback throws (default: silent). */
  readonly logger?: Logger;
}

/** The first delay between boot probes; each next one doubles, up to the check's interval. */
export const BOOT_PROBE_FIRST_MS = 25;

/**
 * Runs a job's health check every interval, starting at once: `ready` after the first success;
 * `unready` after `threshold` consecutive failures; `bootTimeout` when it never became ready
 * within the grace and then failed `threshold` times. Failures within the grace of a job that
 * was never ready do not count. While it boots (never ready, within the grace) probes come
 * sooner: after {@link BOOT_PROBE_FIRST_MS}, doubling up to the interval, so a job is published
 * within milliseconds of listening rather than up to an interval later.
 *
 * @example
 * ```ts
 * const check = resolveHealthCheck('web', release.processes.web?.healthCheck);
 * if (check !== undefined) {
 *   const monitor = new HealthMonitor({ check, port, on: { ready, unready, bootTimeout } });
 *   // ... on stop:
 *   monitor.stop();
 * }
 * ```
 */
export class HealthMonitor {
  readonly #check: ResolvedHealthCheck;
  readonly #port: number;
  readonly #clock: Clock;
  readonly #on: HealthEvents;
  readonly #logger: Logger;
  readonly #startedAt: number;
  #timer: TimerHandle | undefined;
  #failures = 0;
  /** Probes made while booting: the next boot delay is `BOOT_PROBE_FIRST_MS * 2 ** #bootProbes`. */
  #bootProbes = 0;
  #ready = false;
  #everReady = false;
  #stopped = false;

  /** @throws {@link HostError} `FLOTILLA_HOST_INVALID_OPTIONS` for a port outside 1-65535. */
  constructor(options: HealthMonitorOptions) {
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)
      throw new HostError(
        HostErrorCodes.INVALID_OPTIONS,
        `a health check needs a port from 1 to 65535, got ${String(options.port)}`,
        { path: 'port' },
      );
    this.#check = options.check;
    this.#port = options.port;
    this.#clock = options.clock ?? systemClock;
    this.#on = options.on;
    this.#logger = options.logger ?? silentLogger;
    this.#startedAt = this.#clock.now();
    this.#schedule(0);
  }

  /** Whether the last verdict was ready. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Stops checking; no callback runs after it, even for a probe in flight. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#tick();
    }, ms);
  }

  async #tick(): Promise<void> {
    const result = await probe(this.#check, this.#port);
    if (this.#stopped) return;
    this.#emit('checked', result);
    if (this.#stopped) return;
    if (result.ok) {
      this.#failures = 0;
      if (!this.#ready) {
        this.#ready = true;
        this.#everReady = true;
        this.#emit('ready', result);
      }
    } else if (this.#everReady) {
      this.#failures++;
      if (this.#ready && this.#failures >= this.#check.threshold) {
        this.#ready = false;
        this.#emit('unready', result);
      }
    } else if (this.#clock.now() - this.#startedAt >= this.#check.graceMs) {
      // Still booting past the grace: count failures towards a boot timeout.
      this.#failures++;
      if (this.#failures >= this.#check.threshold) {
        this.stop();
        this.#emit('bootTimeout', result);
        return;
      }
    }
    const interval = this.#check.intervalMs;
    const booting = !this.#everReady && this.#clock.now() - this.#startedAt < this.#check.graceMs;
    this.#schedule(
      booting
        ? Math.min(interval, BOOT_PROBE_FIRST_MS * 2 ** Math.min(30, this.#bootProbes++))
        : interval,
    );
  }

  /** Calls a callback; one that throws is logged, and the checks go on. */
  #emit(event: keyof HealthEvents, result: ProbeResult): void {
    try {
      this.#on[event]?.(result);
    } catch (err) {
      this.#logger.error({ err, event, port: this.#port }, 'a health check callback threw');
    }
  }
}
