import { LocalExecutor } from './local-executor.js';
import { runBuildpackSuite } from './testing/index.js';

runBuildpackSuite({ name: 'LocalExecutor', createExecutor: () => new LocalExecutor() });
