import { readJson, validate } from '../http/body.js';
import { Status, type Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { appName, releaseId, rollbackBody } from './schemas.js';

/** `/apps/{app}/releases`: list, info, and POST to roll back (as Heroku's API does). */
export function releaseRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/releases', async ({ params, signal }) =>
    d.controller.listReleases(validate(appName, params.app), { signal }),
  );
  routes.on('GET', '/apps/:app/releases/:release', async ({ params, signal }) => {
    const release = validate(releaseId, params.release).replace(/^v?/, 'v');
    return d.controller.getRelease(validate(appName, params.app), release, { signal });
  });
  routes.on('POST', '/apps/:app/releases', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    const body = await readJson(req, rollbackBody);
    const to = body.release === undefined ? undefined : body.release.replace(/^v?/, 'v');
    return new Status(201, await d.controller.rollback(app, to, { signal }));
  });
  routes.on('GET', '/apps/:app/deployments', async ({ params, signal }) =>
    d.controller.listDeployments(validate(appName, params.app), { signal }),
  );
}
