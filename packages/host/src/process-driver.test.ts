import { join } from 'node:path';
import { ProcessDriver } from './process-driver.js';
import { runDriverContract } from './testing/contract.js';

runDriverContract({
  name: 'ProcessDriver',
  create: (dir) =>
    ProcessDriver.create({
      stateDir: join(dir, 'state'),
      sampleIntervalMs: 50,
      logPollMs: 50,
    }),
  restart: 'adopt',
  node: process.execPath,
});
