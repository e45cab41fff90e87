import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import { EtcdError, EtcdErrorCodes } from '../errors.js';
import type { EtcdAuthOptions, EtcdStoreOptions } from '../options.js';

/** The default key prefix of an `EtcdStore`. */
export const DEFAULT_PREFIX = '/flotilla/';
/** The default per-call timeout, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** {@link EtcdStoreOptions} checked and filled in. */
export interface ResolvedOptions {
  /** `http(s)://host:port`, one per endpoint, deduplicated. */
  readonly endpoints: readonly string[];
  readonly secure: boolean;
  readonly prefix: string;
  readonly auth: EtcdAuthOptions | undefined;
  readonly tls:
    | {
        readonly ca: Buffer | undefined;
        readonly cert: Buffer | undefined;
        readonly key: Buffer | undefined;
      }
    | undefined;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

function configError(option: string, message: string): EtcdError {
  return new EtcdError(EtcdErrorCodes.CONFIG, message, { option });
}

function normaliseEndpoint(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw configError(
      'endpoints',
      `each endpoint must be a URL such as 'http://127.0.0.1:2379', got ${JSON.stringify(raw)}`,
    );
  }
  const text = raw.includes('://') ? raw.trim() : `http://${raw.trim()}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new EtcdError(
      EtcdErrorCodes.CONFIG,
      `endpoint ${JSON.stringify(raw)} is not a URL: write it as 'http://host:port'`,
      { option: 'endpoints', cause },
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw configError(
      'endpoints',
      `endpoint ${JSON.stringify(raw)} must use http:// or https://, not ${url.protocol}//`,
    );
  }
  if (url.port === '') {
    throw configError(
      'endpoints',
      `endpoint ${JSON.stringify(raw)} has no port: etcd's client port is usually 2379`,
    );
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    throw configError(
      'endpoints',
      `endpoint ${JSON.stringify(raw)} must be only scheme, host and port: give credentials with the auth option`,
    );
  }
  return `${url.protocol}//${url.host}`;
}

function pem(value: unknown, option: string): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw configError(option, `${option} must be PEM text or bytes, got ${typeof value}`);
}

/** Checks the options of an `EtcdStore`; throws `FLOTILLA_ETCD_CONFIG` on the first problem. */
export function resolveOptions(options: EtcdStoreOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw configError(
      'options',
      "EtcdStore needs options: new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] })",
    );
  }
  const list = typeof options.endpoints === 'string' ? [options.endpoints] : options.endpoints;
  if (!Array.isArray(list) || list.length === 0) {
    throw configError(
      'endpoints',
      "endpoints must name at least one etcd client URL, e.g. ['http://127.0.0.1:2379']",
    );
  }
  const endpoints = [...new Set(list.map(normaliseEndpoint))];
  const secure = endpoints[0]?.startsWith('https:') === true;
  if (endpoints.some((e) => e.startsWith('https:') !== secure)) {
    throw configError(
      'endpoints',
      'endpoints mix http:// and https://: use one scheme for all members',
    );
  }

  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || !prefix.isWellFormed()) {
    throw configError('prefix', 'prefix must be a well-formed string such as "/flotilla/"');
  }

  const auth = options.auth;
  if (auth !== undefined) {
    if (
      typeof auth !== 'object' ||
      auth === null ||
      typeof auth.username !== 'string' ||
      auth.username === '' ||
      typeof auth.password !== 'string'
    ) {
      throw configError('auth', 'auth must be { username, password } with a non-empty username');
    }
  }

  let tls: ResolvedOptions['tls'];
  if (options.tls !== undefined) {
    if (typeof options.tls !== 'object' || options.tls === null) {
      throw configError('tls', 'tls must be { ca?, cert?, key? }');
    }
    if (!secure) {
      throw configError('tls', 'tls is set but the endpoints are http://: use https:// endpoints');
    }
    tls = {
      ca: pem(options.tls.ca, 'tls.ca'),
      cert: pem(options.tls.cert, 'tls.cert'),
      key: pem(options.tls.key, 'tls.key'),
    };
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw configError('tls', 'tls.cert and tls.key go together: give both or neither');
    }
  }

  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (
    typeof requestTimeoutMs !== 'number' ||
    !Number.isFinite(requestTimeoutMs) ||
    requestTimeoutMs <= 0
  ) {
    throw configError(
      'requestTimeoutMs',
      `requestTimeoutMs must be a positive number of ms, got ${String(requestTimeoutMs)}`,
    );
  }

  return {
    endpoints,
    secure,
    prefix,
    auth: auth === undefined ? undefined : { username: auth.username, password: auth.password },
    tls,
    requestTimeoutMs,
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
  };
}
