// A view of a store whose txn and watch calls a test can intercept (delay them, fail them, hold
// events back), every other call passing through: one helper instead of a Proxy per test.
import type { Store, Txn, TxnResult, WatchEvent, WatchOptions } from '@flotilla/store';

export interface Intercepts {
  /** Called instead of `txn`; `next` runs the real one; `options` are the caller's. */
  readonly txn?: (
    txn: Txn,
    next: () => Promise<TxnResult>,
    options?: Parameters<Store['txn']>[1],
  ) => Promise<TxnResult>;
  /** Called for each watched event before it is delivered (await to hold it back). */
  readonly watchEvent?: (event: WatchEvent) => Promise<void> | void;
}

/** `store` with `txn` and `watch` routed through `intercepts`; every other member bound to `store`. */
export function interceptStore(store: Store, intercepts: Intercepts): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const { txn, watchEvent } = intercepts;
      if (prop === 'txn' && txn !== undefined)
        return (t: Txn, o?: Parameters<Store['txn']>[1]) => txn(t, () => target.txn(t, o), o);
      if (prop === 'watch' && watchEvent !== undefined)
        return (prefix: string, o?: WatchOptions) =>
          (async function* () {
            for await (const ev of target.watch(prefix, o)) {
              await watchEvent(ev);
              yield ev;
            }
          })();
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

/** Whether a transaction places jobs (puts a key under `jobsPrefix`). */
export function placesJobs(txn: Txn, jobsPrefix: string): boolean {
  return txn.success.some((op) => op.op === 'put' && op.key.startsWith(jobsPrefix));
}
