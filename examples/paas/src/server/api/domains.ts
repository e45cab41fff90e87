import { readJson, validate } from '../http/body.js';
import { Status, type Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { appName, domainBody } from './schemas.js';

/** `/apps/{app}/domains`. */
export function domainRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/domains', async ({ params, signal }) =>
    d.controller.listDomains(validate(appName, params.app), { signal }),
  );
  routes.on('POST', '/apps/:app/domains', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    const { hostname } = await readJson(req, domainBody);
    return new Status(201, await d.controller.addDomain(app, hostname.toLowerCase(), { signal }));
  });
  routes.on('DELETE', '/apps/:app/domains/:hostname', async ({ params, signal }) => {
    const app = validate(appName, params.app);
    const { hostname } = validate(domainBody, { hostname: params.hostname });
    await d.controller.removeDomain(app, hostname.toLowerCase(), { signal });
    return { hostname: hostname.toLowerCase(), app };
  });
}
