// The etcd an integration suite runs against: the one `npm test` started (scripts/services.mjs
// sets FLOTILLA_ETCD_ENDPOINTS), or, when a suite is run on its own (`npx vitest run
// packages/etcd`), one started here for this file. Fails, never skips, when etcd is missing.
import { acquireEtcd, startEtcd as start, type TestEtcd } from '../../scripts/etcd.mjs';
import { claimPortRange } from './port-slots.js';

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

/**
 * An etcd of the caller's own (for tests that stop, restart, freeze or wipe it), on loopback
 * ports reserved for this process below the ephemeral range (support/port-slots.ts) unless
 * given. scripts/etcd.mjs alone picks ports the kernel hands a listener, in the ephemeral range:
 * while a test has etcd down, an outgoing connection of any process (or the test's own client
 * reconnecting, connected to itself) can take the port it is to come back on.
 */
export async function startEtcd(options: Parameters<typeof start>[0] = {}): Promise<TestEtcd> {
  if (options.clientPort !== undefined || options.peerPort !== undefined) return start(options);
  const ports = await claimPortRange(2);
  return start({ ...options, clientPort: ports.from, peerPort: ports.to });
}

export type { TestEtcd };
