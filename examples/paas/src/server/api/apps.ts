import { readJson, validate } from '../http/body.js';
import { Status, type Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { appName, createAppBody } from './schemas.js';

/** `/apps`: list, create, info, destroy. */
export function appRoutes(routes: Routes, d: ApiDeps): void {
  const withUrl = <T extends { name: string }>(app: T): T & { web_url: string | undefined } => ({
    ...app,
    web_url: d.appUrl(app.name),
  });
  routes.on('GET', '/apps', async ({ signal }) =>
    (await d.controller.listApps({ signal })).map(withUrl),
  );
  routes.on('POST', '/apps', async ({ req, signal }) => {
    const body = await readJson(req, createAppBody);
    const app = await d.controller.createApp(
      {
        ...(body.name === undefined ? {} : { name: body.name }),
        ...(body.meta === undefined ? {} : { meta: body.meta }),
      },
      { signal },
    );
    // Marked as this app's: a repository an earlier app of the name left is replaced.
    await d.repos.ensure(app.name, String(app.createdAt));
    return new Status(201, withUrl(app));
  });
  routes.on('GET', '/apps/:app', async ({ params, signal }) =>
    withUrl(await d.controller.getApp(validate(appName, params.app), { signal })),
  );
  routes.on('DELETE', '/apps/:app', async ({ params, signal }) => {
    const name = validate(appName, params.app);
    const app = await d.controller.getApp(name, { signal });
    await d.controller.destroyApp(name, { signal });
    // Only this app's repository: a new app of the name may have been created meanwhile. One
    // left by a crash here is deleted by the sweep at the next start.
    await d.repos.remove(name, String(app.createdAt));
    return withUrl(app);
  });
}
