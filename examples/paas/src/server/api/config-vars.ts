import { readJson, validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { appName, configPatchBody } from './schemas.js';

/** `/apps/{app}/config-vars`: get, and PATCH where `null` unsets. */
export function configRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/config-vars', async ({ params, signal }) =>
    d.controller.getConfig(validate(appName, params.app), { signal }),
  );
  routes.on('PATCH', '/apps/:app/config-vars', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    const patch = await readJson(req, configPatchBody);
    // Waits for the rolling restart: the answer means the new config serves.
    const release = await d.controller.patchConfig(app, patch, { signal });
    const config = await d.controller.getConfig(app, { signal });
    return { config, release: release?.id };
  });
}
