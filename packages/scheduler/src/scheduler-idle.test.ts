// idle() on a scheduler that will never plan again resolves: it hung when a change came in
// after close() (found draining a host of a closed scheduler's cluster).
import { describe, expect, it } from 'vitest';
import { ClusterSimulator } from './simulator.js';

describe('Scheduler.idle', () => {
  it('resolves at once after close(), even with changes it will never plan', async () => {
    await using sim = new ClusterSimulator({ hosts: 2, seed: 1 });
    await sim.start();
    await sim.setFormation({
      app: 'demo',
      release: 'v1',
      processes: { web: { count: 1, resources: { cpu: 100, memory: 128 } } },
    });
    await sim.scheduler.close();
    await sim.cluster.drainHost((await sim.jobs())[0]?.hostId as string);
    const outcome = await Promise.race([
      sim.scheduler.idle().then(() => 'idle'),
      // Far longer than a resolved promise takes: a hang shows as 'hung', not as a test timeout.
      new Promise((resolve) => setTimeout(() => resolve('hung'), 2000)),
    ]);
    expect(outcome).toBe('idle');
    expect(sim.scheduler.state).toBe('stopped');
  });
});
