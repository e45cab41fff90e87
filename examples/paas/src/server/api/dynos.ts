import type { RunOptions } from '@flotilla/controller';
import { readJson, validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import type { ApiDeps } from './deps.js';
import { appName, runBody } from './schemas.js';

/**
 * `/apps/{app}/dynos`: list with state, host and release; DELETE restarts them all (rolling);
 * POST runs a one-off command and streams its output back as NDJSON, then its exit.
 */
export function dynoRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/apps/:app/dynos', async ({ params, signal }) =>
    d.controller.listDynos(validate(appName, params.app), { signal }),
  );
  routes.on('DELETE', '/apps/:app/dynos', async ({ params, signal }) =>
    d.controller.restart(validate(appName, params.app), { signal }),
  );
  routes.on('POST', '/apps/:app/dynos', async ({ params, req, res, signal }) => {
    const app = validate(appName, params.app);
    const body = await readJson(req, runBody);
    const options: RunOptions = {
      command: body.command,
      signal, // the client going away stops the run
      ...(body.env === undefined ? {} : { env: body.env }),
      ...(body.size === undefined ? {} : { size: body.size }),
      ...(body.release === undefined ? {} : { release: body.release }),
      ...(body.timeout === undefined ? {} : { timeoutMs: body.timeout * 1000 }),
    };
    const handle = await d.controller.run(app, options);
    const out = new ResponseStream(res, 'application/x-ndjson');
    await out.json({ id: handle.id });
    for await (const line of handle.output) await out.json(line);
    await out.json({ exit: await handle.exit });
    out.end();
  });
}
