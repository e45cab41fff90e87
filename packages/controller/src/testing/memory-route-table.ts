import { randomBytes } from 'node:crypto';
import type { RouteEntry, RouteInput, RouteTableLike } from '../route-table.js';

/**
 * A {@link RouteTableLike} in memory, for tests of domains without a router: routes by id,
 * one per domain and path (setting one again replaces it).
 */
export class MemoryRouteTable implements RouteTableLike {
  readonly routes = new Map<string, RouteEntry>();

  async set(route: RouteInput): Promise<{ id: string }> {
    for (const [id, r] of this.routes)
      if (r.domain === route.domain && r.path === route.path) {
        this.routes.set(id, { ...route, id });
        return { id };
      }
    const id = `r-${randomBytes(6).toString('hex')}`;
    this.routes.set(id, { ...route, id });
    return { id };
  }

  async remove(id: string): Promise<boolean> {
    return this.routes.delete(id);
  }

  async list(filter: { readonly service?: string } = {}): Promise<RouteEntry[]> {
    return [...this.routes.values()].filter(
      (r) => filter.service === undefined || r.service === filter.service,
    );
  }
}
