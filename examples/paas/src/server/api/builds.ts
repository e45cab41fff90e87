import { mkdir, rm } from 'node:fs/promises';
import type { Build } from '@flotilla/controller';
import { validate } from '../http/body.js';
import { Status, type Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import { saveBody, tempPath } from '../../internal/files.js';
import type { ApiDeps } from './deps.js';
import { appName, buildId } from './schemas.js';

/** The largest source upload (a gzipped tar), 512 MiB. */
export const MAX_SOURCE_BYTES = 512 * 1024 * 1024;

/** `/apps/{app}/builds`: list, info, output, and a build from an uploaded gzipped tarball. */
export function buildRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/builds', async ({ params, signal }) =>
    d.controller.listBuilds(validate(appName, params.app), { signal }),
  );
  routes.on('GET', '/apps/:app/builds/:id', async ({ params, signal }) =>
    d.controller.getBuild(validate(appName, params.app), validate(buildId, params.id), { signal }),
  );
  routes.on('POST', '/apps/:app/builds', async ({ params, req, signal }) => {
    const app = validate(appName, params.app);
    await d.controller.getApp(app, { signal });
    await mkdir(d.uploadDir, { recursive: true });
    const path = tempPath(d.uploadDir, `${app}.tgz`);
    await saveBody(req, path, MAX_SOURCE_BYTES);
    let build: Build;
    try {
      build = await d.controller.createBuild(app, { type: 'tarball', path });
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    void d.controller
      .waitForBuild(app, build.id)
      .catch(() => undefined)
      .finally(() => rm(path, { force: true }));
    return new Status(201, build);
  });
  routes.on('GET', '/apps/:app/builds/:id/output', async ({ params, res, query, signal }) => {
    const app = validate(appName, params.app);
    const id = validate(buildId, params.id);
    await d.controller.getBuild(app, id, { signal });
    const out = new ResponseStream(res, 'application/x-ndjson');
    const follow = query.get('follow') !== 'false';
    for await (const line of d.controller.buildOutput(app, id, { follow, signal })) {
      await out.json(line);
      if (out.closed) break;
    }
    if (!out.closed) await out.json({ build: await d.controller.getBuild(app, id, { signal }) });
    out.end();
  });
}
