import { serviceName } from '@flotilla/host';
import type { Store } from '@flotilla/store';
import type { Domain } from '../domain.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { RouteTableLike } from '../route-table.js';
import { checkHostname } from './names.js';
import type { ControllerParts } from './parts.js';

/**
 * Apps' domains: each hostname claimed by compare-and-set (one app holds it), then set as an
 * http route to `<app>-web` in the route table (`RouteTable` of `@flotilla/router` by default,
 * imported when first needed).
 */
export class DomainService {
  #routes: Promise<RouteTableLike> | undefined;

  constructor(readonly p: ControllerParts) {}

  /** The app's domains. */
  async list(app: string, options: { readonly signal?: AbortSignal }): Promise<Domain[]> {
    return (await this.p.repo.domains(options)).filter((d) => d.app === app);
  }

  /** Claims a hostname for the app and routes it; `FLOTILLA_CONTROLLER_DOMAIN_EXISTS` when taken. */
  async add(
    app: string,
    hostname: string,
    kind: Domain['kind'],
    options: { readonly signal?: AbortSignal },
  ): Promise<Domain> {
    const h = checkHostname(hostname);
    const routes = await this.#table();
    const claim: Domain = {
      hostname: h,
      app,
      kind,
      routeId: undefined,
      createdAt: this.p.o.clock.now(),
    };
    if (!(await this.p.repo.claimDomain(claim, options))) {
      const holder = await this.p.repo.domain(h);
      throw new ControllerError(
        ControllerErrorCodes.DOMAIN_EXISTS,
        `${h} is a domain of ${holder?.app ?? 'another app'}: remove it there first`,
        { app },
      );
    }
    try {
      const res = await routes.set({ type: 'http', domain: h, service: serviceName(app, 'web') });
      const domain: Domain = { ...claim, routeId: typeof res === 'string' ? res : res.id };
      await this.p.repo.putDomain(domain);
      this.p.emit('domain.added', { app, hostname: h });
      return domain;
    } catch (err) {
      await this.p.repo.deleteDomain(h).catch(() => undefined);
      throw err;
    }
  }

  /** Removes a domain of the app and its route; `FLOTILLA_CONTROLLER_DOMAIN_NOT_FOUND` when the app lacks it. */
  async remove(
    app: string,
    hostname: string,
    options: { readonly signal?: AbortSignal },
  ): Promise<void> {
    const h = checkHostname(hostname);
    const domain = await this.p.repo.domain(h, options);
    if (domain?.app !== app)
      throw new ControllerError(
        ControllerErrorCodes.DOMAIN_NOT_FOUND,
        `app ${app} has no domain ${h}`,
        {
          app,
        },
      );
    if (domain.routeId !== undefined) await (await this.#table()).remove(domain.routeId);
    await this.p.repo.deleteDomain(h, options);
    this.p.emit('domain.removed', { app, hostname: h });
  }

  /** Removes every domain of an app and its routes (destroy). */
  async removeAll(app: string, options: { readonly signal?: AbortSignal }): Promise<void> {
    for (const d of await this.list(app, options)) {
      if (d.routeId !== undefined) await (await this.#table()).remove(d.routeId);
      await this.p.repo.deleteDomain(d.hostname);
    }
  }

  #table(): Promise<RouteTableLike> {
    this.#routes ??=
      this.p.o.routes !== undefined
        ? Promise.resolve(this.p.o.routes)
        : defaultRouteTable(this.p.store);
    // A failed import is not cached: the next call tries again.
    this.#routes.catch(() => (this.#routes = undefined));
    return this.#routes;
  }
}

async function defaultRouteTable(store: Store): Promise<RouteTableLike> {
  const specifier = '@flotilla/router';
  let mod: { RouteTable?: unknown };
  try {
    mod = (await import(specifier)) as { RouteTable?: unknown };
  } catch (err) {
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      `@flotilla/router could not be loaded (${(err as Error).message}): pass routes`,
      { cause: err },
    );
  }
  if (typeof mod.RouteTable !== 'function')
    throw new ControllerError(
      ControllerErrorCodes.NOT_CONFIGURED,
      '@flotilla/router has no RouteTable in this version: pass routes',
    );
  const RouteTable = mod.RouteTable as new (store: Store) => RouteTableLike;
  return new RouteTable(store);
}
