import type { Clock, Logger } from '@flotilla/core';

/** etcd user and password (etcd's `--auth` with `etcdctl user add`). */
export interface EtcdAuthOptions {
  readonly username: string;
  readonly password: string;
}

/**
 * TLS material for `https://` endpoints, as PEM text or bytes. Without `ca`, the system's root
 * certificates are trusted; give `cert` and `key` together for client-certificate auth.
 */
export interface EtcdTlsOptions {
  /** The CA certificate that signed etcd's server certificate. */
  readonly ca?: string | Uint8Array;
  /** The client certificate (etcd's `--client-cert-auth`). */
  readonly cert?: string | Uint8Array;
  /** The client certificate's private key. */
  readonly key?: string | Uint8Array;
}

/** Options of {@link EtcdStore}. */
export interface EtcdStoreOptions {
  /**
   * etcd client URLs, e.g. `'http://127.0.0.1:2379'` or several members of one cluster. All
   * `http://` or all `https://`; a bare `host:port` means `http://`.
   */
  readonly endpoints: string | readonly string[];
  /**
   * Where this store's keys live in etcd (default `'/flotilla/'`). Keys, list results and watch
   * events carry the store's keys without it, so several Flotilla clusters (or test suites) can
   * share one etcd under different prefixes. `''` uses the whole keyspace.
   */
  readonly prefix?: string;
  /** etcd user and password, when etcd has auth enabled. */
  readonly auth?: EtcdAuthOptions;
  /** TLS material for `https://` endpoints. */
  readonly tls?: EtcdTlsOptions;
  /**
   * How long one call may take before it fails with `FLOTILLA_STORE_UNAVAILABLE` (default
   * 5000 ms). It bounds calls made while etcd is down or hung; watches are not bounded by it,
   * they reconnect until they are closed.
   */
  readonly requestTimeoutMs?: number;
  /** Drives watch reconnect backoff and lease expiry checks (default: the system clock). */
  readonly clock?: Clock;
  /** A pino-compatible logger for reconnects and lease losses (default: silent). */
  readonly logger?: Logger;
}
