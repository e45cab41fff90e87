import type { Discovery } from '@flotilla/discovery';
import { listAndWatch, type Store } from '@flotilla/store';
import { RouterError } from './errors.js';
import { isServiceName } from './route.js';
import { DEFAULT_ROUTER_PREFIX, RouteTable } from './route-table.js';

/** The discovery service routers register under by default. */
export const DEFAULT_ROUTER_SERVICE = 'flotilla-router';

/** Options of {@link waitForDrained}. */
export interface WaitForDrainedOptions {
  /** The store the routers share. */
  readonly store: Store;
  /** The discovery routers and instances register in. */
  readonly discovery: Discovery;
  /** The service of the instance. */
  readonly service: string;
  /** The instance id, as registered in discovery. */
  readonly instanceId: string;
  /** Rejects with the signal's reason when aborted. */
  readonly signal?: AbortSignal;
  /** Rejects with `FLOTILLA_ROUTER_DRAIN_TIMEOUT` after this many ms (default 60000). */
  readonly timeoutMs?: number;
  /** The routers' store prefix (default `router/`). */
  readonly prefix?: string;
  /** The discovery service routers register under (default `flotilla-router`). */
  readonly routerService?: string;
}

const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Resolves once every router registered in discovery has drained the instance (it stopped
 * sending it new requests and its in-flight ones finished), or has left discovery. Call it
 * between marking an instance not ready and stopping it. Resolves at once when no route
 * names the service (no router sends it traffic).
 *
 * @example
 * ```ts
 * await registration.setReady(false);
 * await waitForDrained({ store, discovery, service: 'demo-web', instanceId: registration.id, timeoutMs: 30_000 });
 * process.kill(pid, 'SIGTERM');
 * ```
 */
export async function waitForDrained(options: WaitForDrainedOptions): Promise<void> {
  const { store, discovery, service, instanceId, signal } = options;
  const prefix = options.prefix ?? DEFAULT_ROUTER_PREFIX;
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (!isServiceName(service)) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_OPTIONS',
      `waitForDrained: service ${JSON.stringify(service)} is not a service name`,
    );
  }
  if (typeof instanceId !== 'string' || !ID_RE.test(instanceId)) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_OPTIONS',
      `waitForDrained: instanceId ${JSON.stringify(instanceId)} is not an instance id ([A-Za-z0-9_.-], 1-128)`,
    );
  }
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isFinite(timeoutMs) ||
    timeoutMs < 0 ||
    timeoutMs > 2 ** 31 - 1
  ) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_OPTIONS',
      `waitForDrained: timeoutMs ${String(timeoutMs)} must be a number of ms from 0 to 2^31 - 1`,
    );
  }
  signal?.throwIfAborted();
  const routes = await new RouteTable(store, { prefix }).list(
    { service },
    signal === undefined ? {} : { signal },
  );
  if (routes.length === 0) return;
  signal?.throwIfAborted();

  const ac = new AbortController();
  const onAbort = (): void => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const routers = new Set<string>();
  const drained = new Set<string>();
  let routersSynced = false;
  let drainsSynced = false;
  const base = `${prefix}drains/`;
  const suffix = `/${service}/${instanceId}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const waiting = [...routers].filter((r) => !drained.has(r));
        reject(
          new RouterError(
            'FLOTILLA_ROUTER_DRAIN_TIMEOUT',
            `instance ${service}/${instanceId} was not drained within ${timeoutMs} ms by router(s) ${waiting.join(', ') || '(none registered yet)'}: requests to it are still in flight, or those routers cannot reach the store`,
          ),
        );
      }, timeoutMs);
      ac.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(ac.signal.reason);
      });
      const check = (): void => {
        if (!routersSynced || !drainsSynced) return;
        for (const r of routers) if (!drained.has(r)) return;
        clearTimeout(timer);
        resolve();
      };
      void (async () => {
        for await (const ev of discovery.watch(options.routerService ?? DEFAULT_ROUTER_SERVICE, {
          signal: ac.signal,
        })) {
          if (ev.kind === 'current') {
            routers.clear();
            for (const i of ev.instances) routers.add(i.id);
            routersSynced = true;
          } else if (ev.kind === 'up' || ev.kind === 'update') routers.add(ev.instance.id);
          else if (ev.kind === 'down') routers.delete(ev.instance.id);
          check();
        }
      })().catch(reject);
      const routerOf = (key: string): string | undefined => {
        if (!key.endsWith(suffix)) return undefined;
        const r = key.slice(base.length, key.length - suffix.length);
        return r.includes('/') ? undefined : r;
      };
      void (async () => {
        for await (const item of listAndWatch(store, base, { signal: ac.signal })) {
          if (item.type === 'snapshot') {
            drained.clear();
            for (const kv of item.kvs) {
              const r = routerOf(kv.key);
              if (r !== undefined) drained.add(r);
            }
            drainsSynced = true;
          } else {
            const r = routerOf(item.event.kv.key);
            if (r === undefined) continue;
            if (item.event.type === 'put') drained.add(r);
            else drained.delete(r);
          }
          check();
        }
      })().catch(reject);
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!ac.signal.aborted) ac.abort();
  }
}
