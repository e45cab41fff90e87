// The etcd an integration suite runs against: the one `npm test` started (scripts/services.mjs
// sets FLOTILLA_ETCD_ENDPOINTS), or, when a suite is run on its own (`npx vitest run
// packages/etcd`), one started here for this file. Fails, never skips, when etcd is missing.
import { acquireEtcd, startEtcd, type TestEtcd } from '../../scripts/etcd.mjs';

let acquired: ReturnType<typeof acquireEtcd> | undefined;

/** Endpoints of the etcd to test against. Call from beforeAll; pair with {@link releaseEtcd}. */
export async function etcdEndpoints(): Promise<string[]> {
  acquired ??= acquireEtcd();
  return (await acquired).endpoints;
}

/** Stops the etcd this file started, if it started one. */
export async function releaseEtcd(): Promise<void> {
  if (acquired === undefined) return;
  const { release } = await acquired;
  acquired = undefined;
  await release();
}

/** A unique key prefix so that suites sharing one etcd never see each other's keys. */
export function uniquePrefix(name: string): string {
  return `/flotilla-test/${name}/${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}/`;
}

export { startEtcd };
export type { TestEtcd };
