import type { FormationPatchEntry } from '@flotilla/controller';
import { readJson, validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import type { ApiDeps } from './deps.js';
import { appName, formationBatchBody, formationOneBody, processType } from './schemas.js';

/** `/apps/{app}/formation`: quantities and sizes per process type. */
export function formationRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/formation', async ({ params, signal }) =>
    d.controller.getFormation(validate(appName, params.app), { signal }),
  );
  routes.on('PATCH', '/apps/:app/formation', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    const { updates } = await readJson(req, formationBatchBody);
    const patch: Record<string, FormationPatchEntry> = {};
    for (const u of updates) patch[u.type] = entry(u);
    return d.controller.patchFormation(app, patch, { signal });
  });
  routes.on('PATCH', '/apps/:app/formation/:type', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    const type = validate(processType, params.type);
    const body = await readJson(req, formationOneBody);
    return d.controller.patchFormation(app, { [type]: entry(body) }, { signal });
  });
}

function entry(u: {
  quantity?: number | undefined;
  size?: string | undefined;
}): FormationPatchEntry {
  return {
    ...(u.quantity === undefined ? {} : { quantity: u.quantity }),
    ...(u.size === undefined ? {} : { size: u.size }),
  };
}
