// A controller in a process of its own, for the kill-mid-deploy test: deploys v1 of an app,
// then a config change whose new jobs never become ready, prints "deploying <app>" once that
// rollout has started a new job, and waits to be killed.
//   node deploy-child.mjs <sqlite path> <work dir> <source dir>
import { Controller, DirectoryArtifactStore, ProcfileBuilder } from '@flotilla/controller';
import { FakeAgents } from '@flotilla/controller/testing';
import { Scheduler } from '@flotilla/scheduler';
import { SqliteStore } from '@flotilla/sqlite';

const [path, workDir, src] = process.argv.slice(2);
// Library timers are unref'd: this keeps the process alive until it is killed.
setInterval(() => undefined, 1 << 30);
const store = new SqliteStore({ path });
const scheduler = new Scheduler({ store, restartBackoffMs: [60_000] });
const agents = new FakeAgents({
  store,
  behaviour: (job) => (job.release?.config.SLOW === '1' ? 'hang' : 'run'),
});
const controller = new Controller({
  store,
  artifacts: new DirectoryArtifactStore({ dir: `${workDir}/artifacts` }),
  workDir,
  builder: new ProcfileBuilder(),
  leaseTtlMs: 1000,
  deploy: { readyTimeoutMs: 600_000, stopTimeoutMs: 5000 },
});
await scheduler.start();
await agents.start();
await controller.start();
await controller.createApp({ name: 'demo' });
const build = await controller.createBuild('demo', { type: 'git', dir: src, sha: 'a'.repeat(40) });
const outcome = await controller.waitForDeploy('demo', build.id);
if (outcome.status !== 'live') throw new Error(`v1 did not go live: ${outcome.reason}`);
// The progress line is said once the new job's formation is written.
const started = new Promise((resolve) =>
  controller.on('deploy.progress', ({ message }) => {
    if (/^web: starting/.test(message)) resolve();
  }),
);
void controller.patchConfig('demo', { SLOW: '1' }).catch(() => undefined);
await started;
process.stdout.write('deploying demo\n');
