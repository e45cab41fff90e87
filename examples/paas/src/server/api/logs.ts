import { validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import type { ApiDeps } from './deps.js';
import { appName, logQuery } from './schemas.js';

/**
 * `/apps/{app}/log-stream?lines=&tail=&type=&dyno=`: the app's logs as text lines in Heroku's
 * format; with `tail=true` it follows, including dynos that start meanwhile. `POST
 * /apps/{app}/log-sessions` answers with that URL, as Heroku's API does.
 */
export function logRoutes(routes: Routes, d: ApiDeps, apiUrl: () => string): void {
  routes.on('GET', '/apps/:app/log-stream', async ({ params, query, res, signal }) => {
    const app = validate(appName, params.app);
    const q = validate(logQuery, Object.fromEntries(query));
    await d.controller.getApp(app, { signal });
    const out = new ResponseStream(res, 'text/plain; charset=utf-8');
    for await (const line of d.logs.read(app, {
      lines: q.lines,
      follow: q.tail,
      ...(q.type === undefined ? {} : { type: q.type }),
      ...(q.dyno === undefined ? {} : { dyno: q.dyno }),
      signal,
    })) {
      await out.write(line + '\n');
      if (out.closed) break;
    }
    out.end();
  });
  routes.on('POST', '/apps/:app/log-sessions', async ({ params, signal }) => {
    const app = validate(appName, params.app);
    await d.controller.getApp(app, { signal });
    return { logplex_url: `${apiUrl()}/apps/${app}/log-stream` };
  });
}
