// A controller in a process of its own, for the kill test: starts a build whose builder never
// ends, prints "running <app> <build id>" once its first output line is stored, and waits to
// be killed.  node build-child.mjs <sqlite path> <work dir> <source dir>
import { Controller, DirectoryArtifactStore } from '@flotilla/controller';
import { SqliteStore } from '@flotilla/sqlite';

const [path, workDir, src] = process.argv.slice(2);
// Library timers are unref'd: this keeps the process alive until it is killed.
setInterval(() => undefined, 1 << 30);
const store = new SqliteStore({ path });
const builder = {
  build: async ({ onOutput }) => {
    onOutput('-----> compiling for ever\n');
    await new Promise(() => undefined);
  },
};
const controller = new Controller({
  store,
  artifacts: new DirectoryArtifactStore({ dir: `${workDir}/artifacts` }),
  workDir,
  builder,
  leaseTtlMs: 1000,
});
await controller.start();
await controller.createApp({ name: 'demo' });
const build = await controller.createBuild('demo', { type: 'git', dir: src, sha: 'abcdef1234567' });
for await (const line of controller.buildOutput('demo', build.id)) {
  if (line.line.includes('compiling')) break;
}
process.stdout.write(`running demo ${build.id}\n`);
