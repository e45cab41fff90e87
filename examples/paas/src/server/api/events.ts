import { validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import type { ApiDeps } from './deps.js';
import { appName } from './schemas.js';

/** `/events`: the controller's events as server-sent events, of one app with `?app=`. */
export function eventRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/events', async ({ res, query, signal }) => {
    const app = query.get('app');
    const filter = app === null ? {} : { app: validate(appName, app) };
    const out = new ResponseStream(res, 'text/event-stream');
    await out.write(': flotilla events\n\n');
    const keepalive = setInterval(() => void out.write(': keepalive\n\n'), 15_000);
    try {
      for await (const ev of d.controller.events({ ...filter, signal })) {
        await out.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
        if (out.closed) break;
      }
    } catch (err) {
      if (!signal.aborted)
        await out.write(`event: error\ndata: ${JSON.stringify({ message: String(err) })}\n\n`);
    } finally {
      clearInterval(keepalive);
      out.end();
    }
  });
}
