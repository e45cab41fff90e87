import { pipeline } from 'node:stream/promises';
import { validate } from '../http/body.js';
import type { Routes } from '../http/routes.js';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import type { ApiDeps } from './deps.js';
import { digest } from './schemas.js';

/** `/artifacts/{sha256}`: slugs for host agents on other machines (they check the digest). */
export function artifactRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('GET', '/artifacts/:digest', async ({ params, res }) => {
    const id = validate(digest, params.digest);
    const info = await d.artifacts.stat(id);
    if (info === undefined)
      throw new PaasError(PaasErrorCodes.NOT_FOUND, `no artifact ${id}`, { status: 404 });
    const body = await d.artifacts.open(id);
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': info.size });
    await pipeline(body, res).catch(() => undefined);
  });
}
