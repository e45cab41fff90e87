import type { Driver } from '@flotilla/host';
import { z } from 'zod';
import { validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';

const query = z.object({
  tail: z.coerce.number().int().min(0).max(1500).default(100),
  follow: z
    .enum(['true', 'false'])
    .default('false')
    .transform((s) => s === 'true'),
});
const jobId = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[^/\0]+$/, 'a job id has no / nor NUL');

/**
 * `/internal/jobs/{id}/logs`: the log lines of a job this host runs, as NDJSON, for the log
 * aggregation of the API server (`flotilla logs` of a dyno on another machine).
 */
export function jobLogRoutes(routes: Routes, driver: Pick<Driver, 'logs'>): void {
  routes.on('GET', '/internal/jobs/:id/logs', async ({ params, query: q, res, signal }) => {
    const id = validate(jobId, params.id);
    const { tail, follow } = validate(query, Object.fromEntries(q));
    const it = driver.logs(id, { tail, follow, signal })[Symbol.asyncIterator]();
    const first = await it.next(); // a job the driver does not know fails here, before the head
    const out = new ResponseStream(res, 'application/x-ndjson');
    if (!first.done) {
      await out.json(first.value);
      for (let r = await it.next(); !r.done && !out.closed; r = await it.next())
        await out.json(r.value);
    }
    out.end();
  });
}
