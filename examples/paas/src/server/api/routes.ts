import type { ClusterState } from '@flotilla/cluster';
import type { Logger } from '@flotilla/core';
import type { Router } from '../http/router.js';

/** What the API's handlers work on. */
export interface ApiDeps {
  readonly cluster: ClusterState;
  readonly logger: Logger;
}

/** Adds every API route to `router`. */
export function apiRoutes(router: Router, deps: ApiDeps): void {
  router.on('GET', '/hosts', async ({ signal }) => {
    const hosts = await deps.cluster.hosts({ signal });
    return hosts.map((h) => ({
      id: h.record.id,
      address: h.record.addr,
      state: h.state,
      live: h.live,
      capacity: h.record.capacity,
      tags: h.record.tags,
    }));
  });
}
