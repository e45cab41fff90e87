import type { Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';

/** `/hosts`: the cluster's hosts with their state. */
export function hostRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/hosts', async ({ signal }) =>
    (await d.controller.hosts({ signal })).map((h) => ({
      id: h.record.id,
      address: h.record.addr,
      state: h.state,
      live: h.live,
      capacity: h.record.capacity,
      allocated: h.alloc,
      tags: h.record.tags ?? {},
      registered_at: h.record.registeredAt,
    })),
  );
}
