import type { Clock } from '@flotilla/core';
import {
  castGrpcError,
  Etcd3,
  EtcdInvalidAuthTokenError,
  GRPCUnavailableError,
  type IOptions,
  isRecoverableError,
} from 'etcd3';
import type { ResolvedOptions } from './resolve-options.js';

/** What etcd3 calls a fault-handling policy; it only ever calls `execute`. */
interface ExecutePolicy {
  execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T>;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

const neverAborted = new AbortController().signal;

/**
 * Runs each call once. etcd3's default retries writes (a txn could then apply twice and
 * report a conflict) and opens a 5 s circuit breaker that outlives an etcd restart; the store
 * decides about retries itself.
 */
const passThrough: ExecutePolicy = {
  execute: async (fn) => fn({ signal: neverAborted }),
};

/** After this many failures in a row, an endpoint is skipped for a while (several endpoints only). */
const BREAKER_FAILURES = 2;
/** How long an endpoint that keeps failing is skipped, in ms. */
const BREAKER_OPEN_MS = 1000;

/**
 * A small circuit breaker per endpoint, used only with several endpoints: a member that keeps
 * failing is skipped, so calls go to the live members instead of failing.
 */
function breaker(host: string, clock: Clock): ExecutePolicy {
  let failures = 0;
  let openUntil = 0;
  return {
    execute: async (fn) => {
      if (failures >= BREAKER_FAILURES && clock.now() < openUntil) {
        throw new GRPCUnavailableError(`etcd endpoint ${host} failed ${failures} times in a row`);
      }
      try {
        const result = await fn({ signal: neverAborted });
        failures = 0;
        return result;
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err)) {
          failures++;
          if (failures >= BREAKER_FAILURES) openUntil = clock.now() + BREAKER_OPEN_MS;
        }
        throw err;
      }
    },
  };
}

/** Makes the etcd3 client of a store. It connects lazily, on the first call. */
export function createClient(options: ResolvedOptions): Etcd3 {
  const deadline = () => ({ deadline: Date.now() + options.requestTimeoutMs });
  const several = options.endpoints.length > 1;
  return new Etcd3({
    hosts: [...options.endpoints],
    ...(options.tls === undefined
      ? {}
      : {
          credentials: {
            // grpc-js trusts the system roots when the CA is null.
            rootCertificate: options.tls.ca ?? (null as unknown as Buffer),
            ...(options.tls.key === undefined ? {} : { privateKey: options.tls.key }),
            ...(options.tls.cert === undefined ? {} : { certChain: options.tls.cert }),
          },
        }),
    ...(options.auth === undefined
      ? {}
      : {
          auth: {
            username: options.auth.username,
            password: options.auth.password,
            callOptions: deadline,
          },
        }),
    grpcOptions: {
      // Reconnect soon after etcd comes back (grpc's default backoff grows to 2 minutes).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      // Notice a hung etcd on long-lived watch streams (etcd refuses pings under 5 s apart).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // Large lists: grpc's default of 4 MiB is easily reached by a list of a big prefix.
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
    },
    faultHandling: {
      global: passThrough as unknown as Policy,
      host: (host) => (several ? breaker(host, options.clock) : passThrough) as unknown as Policy,
    },
  });
}

/** The slice of a grpc-js client raw calls need. */
interface RawClient {
  makeBidiStreamRequest<Req, Res>(
    method: string,
    serialize: (value: Req) => Buffer,
    deserialize: (value: Buffer) => Res,
    metadata: unknown,
    options: object,
  ): RawDuplex<Req, Res>;
  makeUnaryRequest<Req, Res>(
    method: string,
    serialize: (value: Req) => Buffer,
    deserialize: (value: Buffer) => Res,
    argument: Req,
    metadata: unknown,
    options: { deadline: number },
    callback: (err: Error | null, value?: Res) => void,
  ): unknown;
}

/** A grpc-js bidirectional stream, as the store uses it. */
export interface RawDuplex<Req, Res> {
  readonly writable?: boolean;
  write(message: Req): boolean;
  end(): void;
  cancel(): void;
  on(event: 'data', listener: (message: Res) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

/** The slice of etcd3's connection pool (`Etcd3.pool`, not in its typings) a raw call uses. */
interface Pool {
  withConnection<T>(
    service: string,
    fn: (connection: { resource: unknown; client: RawClient; metadata: unknown }) => T | Promise<T>,
  ): Promise<T>;
  markFailed(resource: unknown, err: Error): void;
  readonly authenticator?: { invalidateMetadata(): void };
}

function poolOf(client: Etcd3): Pool {
  const pool = (client as unknown as { pool?: Pool }).pool;
  if (
    pool === undefined ||
    typeof pool.withConnection !== 'function' ||
    typeof pool.markFailed !== 'function'
  )
    throw new Error('etcd3 has no connection pool where @flotilla/etcd expects it');
  return pool;
}

/**
 * Opens a stream of etcd's `Watch` service with bytes in and decoded responses out (see
 * `watch-codec.ts`), through etcd3's connection pool as etcd3's own `watchClient.watch()`
 * does: an error on a stream still writable marks the endpoint failed.
 */
export function rawWatchStream<Res>(
  client: Etcd3,
  decode: (b: Buffer) => Res,
): () => Promise<RawDuplex<Buffer, Res>> {
  const pool = poolOf(client);
  return () =>
    pool.withConnection('Watch', ({ resource, client: grpc, metadata }) => {
      const stream = grpc.makeBidiStreamRequest<Buffer, Res>(
        '/etcdserverpb.Watch/Watch',
        identity,
        decode,
        metadata,
        {},
      );
      stream.on('error', (err) => {
        if (stream.writable === true) pool.markFailed(resource, err);
      });
      return stream;
    });
}

const identity = (b: Buffer): Buffer => b;

/**
 * A unary call of etcd's `KV` service with bytes in and out: the caller encodes the request
 * and decodes the response itself (see `txn-codec.ts`). It goes through etcd3's connection
 * pool, so it shares the client's connection, credentials, auth token and per-endpoint
 * fault handling; errors are cast as etcd3 casts them. An auth token etcd no longer accepts
 * is dropped and the call made once more with a new one, as etcd3 does (etcd refused the call,
 * so it did not apply).
 */
export function rawKvCall(
  client: Etcd3,
  method: 'Txn',
): <T>(request: Buffer, decode: (b: Buffer) => T, options: { deadline: number }) => Promise<T> {
  const pool = poolOf(client);
  const path = `/etcdserverpb.KV/${method}`;
  const call = <T>(
    request: Buffer,
    decode: (b: Buffer) => T,
    options: { deadline: number },
  ): Promise<T> =>
    pool.withConnection(
      'KV',
      ({ client: grpc, metadata }) =>
        new Promise<T>((resolve, reject) => {
          grpc.makeUnaryRequest(path, identity, decode, request, metadata, options, (err, res) => {
            if (err !== null) reject(castGrpcError(err));
            else resolve(res as T);
          });
        }),
    );
  return async (request, decode, options) => {
    try {
      return await call(request, decode, options);
    } catch (err) {
      if (!(err instanceof EtcdInvalidAuthTokenError)) throw err;
      pool.authenticator?.invalidateMetadata();
      return call(request, decode, options);
    }
  };
}
