import type { ClusterState } from '@flotilla/cluster';
import type { Store } from '@flotilla/store';
import type { ControllerEventMap, ControllerEventType } from '../events.js';
import type { Deployer } from './deployer.js';
import type { HookRegistry } from './hook-registry.js';
import type { JobMirror } from './job-mirror.js';
import type { ControllerKeys } from './keys.js';
import type { AppLocks } from './lock.js';
import type { ResolvedOptions } from './options.js';
import type { Repo } from './repo.js';

/** The parts a controller is made of, shared by the services it delegates to. */
export interface ControllerParts {
  /** The controller's instance id (owner of its builds and deploys). */
  readonly id: string;
  readonly o: ResolvedOptions;
  /** The store, retrying calls through short outages (background work writes through it). */
  readonly store: Store;
  readonly keys: ControllerKeys;
  readonly repo: Repo;
  readonly cluster: ClusterState;
  readonly mirror: JobMirror;
  readonly locks: AppLocks;
  readonly hooks: HookRegistry;
  readonly deployer: Deployer;
  readonly emit: <K extends ControllerEventType>(type: K, payload: ControllerEventMap[K]) => void;
}
