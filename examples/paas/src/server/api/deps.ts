import type { Logger } from '@flotilla/core';
import type { ClusterState } from '@flotilla/cluster';
import type { ArtifactStore, Controller } from '@flotilla/controller';
import type { GitRepos } from '../git/repos.js';
import type { LogAggregator } from '../logs/log-aggregator.js';

/** What the API's handlers work with. */
export interface ApiDeps {
  readonly controller: Controller;
  /** The cluster state, for hosts: their jobs, and the operator's drain and eligibility. */
  readonly cluster: Pick<
    ClusterState,
    'drainHost' | 'undrainHost' | 'setEligible' | 'host' | 'jobs'
  >;
  readonly artifacts: ArtifactStore;
  readonly repos: GitRepos;
  readonly logs: LogAggregator;
  /** Where uploads and checkouts are written while they build. */
  readonly uploadDir: string;
  /** The URL an app answers at through the router (`http://demo.localhost:8080`), if known. */
  readonly appUrl: (app: string) => string | undefined;
  readonly logger: Logger;
}
