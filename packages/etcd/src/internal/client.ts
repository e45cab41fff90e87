import type { Clock } from '@flotilla/core';
import { Etcd3, GRPCUnavailableError, type IOptions, isRecoverableError } from 'etcd3';
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
