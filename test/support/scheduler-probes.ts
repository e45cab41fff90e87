// What the Scheduler's probe suites share: a MemoryStore cluster on a manual clock, formations
// declared with their release, and a clock that advances until a condition holds.
import { ClusterState, type Formation } from '@flotilla/cluster';
import { ManualClock } from '@flotilla/core';
import { MemoryStore } from '@flotilla/store';

/** A formation of `count` web jobs of 100 millicores and 100 MiB each. */
export const web = (count: number, app = 'demo'): Formation => ({
  app,
  release: 'v1',
  processes: { web: { count, resources: { cpu: 100, memory: 100 } } },
});

/** A MemoryStore (with `historyLimit` if given) and `hosts` large hosts `h0`, `h1`... */
export async function setup(
  hosts = 1,
  historyLimit?: number,
): Promise<{ clock: ManualClock; memory: MemoryStore; cluster: ClusterState }> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const memory = new MemoryStore({
    clock,
    ...(historyLimit === undefined ? {} : { historyLimit }),
  });
  const cluster = new ClusterState({ store: memory, clock });
  for (let i = 0; i < hosts; i++)
    await cluster.registerHost(
      { id: `h${i}`, addr: `test://h${i}`, capacity: { cpu: 64_000, memory: 65_536 } },
      { ttlMs: 600_000 },
    );
  return { clock, memory, cluster };
}

/** Writes the formation's release, then the formation. */
export async function declare(cluster: ClusterState, formation: Formation): Promise<void> {
  await cluster.putRelease({
    app: formation.app,
    release: formation.release,
    artifact: { type: 'image', image: 'test' },
    config: {},
    processes: Object.fromEntries(Object.keys(formation.processes).map((t) => [t, { command: t }])),
    createdAt: 0,
  });
  await cluster.setFormation(formation);
}

/** Advances the clock step by step until `done()` or the time runs out. */
export async function until(
  clock: ManualClock,
  done: () => Promise<boolean>,
  ms = 60_000,
): Promise<void> {
  for (let t = 0; t < ms && !(await done()); t += 250) await clock.advance(250);
}
