// A host agent in a process of its own, for tests that SIGKILL it (test/host-failover.integration.test.ts).
//   node test/host-agent-child.mjs <endpoints,> <prefix> <host id> <dir> <port from> <port to>
// Prints one JSON line per event: {"started":true}, {"ready":"<job id>"}.
import { join } from 'node:path';
import { EtcdStore } from '@flotilla/etcd';
import { ArtifactCache, HostAgent, ProcessDriver } from '@flotilla/host';

const [endpoints, prefix, id, dir, from, to] = process.argv.slice(2);
const store = new EtcdStore({ endpoints: endpoints.split(','), prefix });
const driver = await ProcessDriver.create({ stateDir: join(dir, `state-${id}`), logPollMs: 50 });
const agent = new HostAgent({
  id,
  store,
  driver,
  address: '127.0.0.1:7000',
  capacity: { cpu: 1000, memory: 1024 },
  ports: { from: Number(from), to: Number(to) },
  artifacts: new ArtifactCache({ dir: join(dir, `artifacts-${id}`) }),
  workDir: join(dir, `run-${id}`),
  heartbeatTtlMs: 1000,
  drainMs: 0,
});
agent.on('error', () => undefined);
agent.on('ready', (jobId) => console.log(JSON.stringify({ ready: jobId })));
await agent.start();
console.log(JSON.stringify({ started: true }));
setInterval(() => undefined, 1 << 30); // until killed
