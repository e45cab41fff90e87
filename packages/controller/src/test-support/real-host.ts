// A real host for end-to-end tests: a HostAgent with a ProcessDriver, a runner for one-off
// jobs on a driver of its own, and a log collector standing in for the PaaS's log aggregation.
import { join } from 'node:path';
import { ArtifactCache, HostAgent, ProcessDriver } from '@flotilla/host';
import type { HostAgentOptions } from '@flotilla/host';

type DrainWait = NonNullable<HostAgentOptions['drainWait']>;
import type { Store } from '@flotilla/store';
import { DriverOneOffRunner } from '../driver-one-off-runner.js';
import type { JobLogSource } from '../job-logs.js';
import { claimPortRange } from '../../../../test/support/port-slots.js';

export interface RealHost {
  agent: HostAgent;
  runner: DriverOneOffRunner;
  logs: JobLogSource;
  close(): Promise<void>;
}

export async function realHost(
  store: Store,
  dir: string,
  extra: { drainMs?: number; drainWait?: DrainWait } = {},
): Promise<RealHost> {
  const driver = await ProcessDriver.create({ stateDir: join(dir, 'state'), logPollMs: 50 });
  const runDriver = await ProcessDriver.create({ stateDir: join(dir, 'run-state'), logPollMs: 50 });
  const artifacts = new ArtifactCache({ dir: join(dir, 'cache') });
  const agent = new HostAgent({
    id: 'host-1',
    store,
    driver,
    address: '127.0.0.1:7000',
    capacity: { cpu: 8000, memory: 16384 },
    ports: await claimPortRange(40),
    artifacts,
    workDir: join(dir, 'jobs'),
    drainMs: extra.drainMs ?? 50,
    ...(extra.drainWait === undefined ? {} : { drainWait: extra.drainWait }),
    heartbeatTtlMs: 5000,
  });
  const lines = new Map<string, string[]>();
  const abort = new AbortController();
  agent.on('started', (jobId) => {
    const kept: string[] = [];
    lines.set(jobId, kept);
    void (async () => {
      try {
        for await (const l of driver.logs(jobId, { follow: true, signal: abort.signal })) {
          kept.push(l.line);
          if (kept.length > 200) kept.shift();
        }
      } catch {
        // removed
      }
    })();
  });
  const logs: JobLogSource = {
    async tail(job, n) {
      return (lines.get(job.id) ?? []).slice(-n);
    },
  };
  const runner = new DriverOneOffRunner({
    driver: runDriver,
    artifacts,
    workDir: join(dir, 'run'),
    // A one-off stopped right after it started can lose its SIGTERM (bash between fork and
    // exec of the command): the SIGKILL then ends it after 1 s, not the default 10 s.
    stopGraceMs: 1000,
  });
  await agent.start();
  return {
    agent,
    runner,
    logs,
    async close() {
      abort.abort();
      await agent.close({ stopJobs: true }).catch(() => undefined);
      await driver.close();
      await runDriver.close();
    },
  };
}
