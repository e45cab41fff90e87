import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@flotilla/core';
import type { Controller } from '@flotilla/controller';
import { send } from '../http/api-server.js';
import { errorResponse } from '../http/errors.js';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { serveGit } from './http-backend.js';
import type { GitRepos } from './repos.js';
import { KeyedLock } from '../../internal/keyed-lock.js';

const GIT_PATH =
  /^\/git\/([a-z][a-z0-9-]{0,62})\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack)$/;

/** What {@link gitHandler} needs. */
export interface GitHandlerOptions {
  readonly repos: GitRepos;
  readonly controller: Controller;
  /** The URL the hook calls back (`http://127.0.0.1:7700`). */
  readonly apiUrl: () => string;
  readonly token: string;
  readonly logger: Logger;
}

/**
 * Serves `/git/<app>.git` (smart HTTP only) for apps that exist. Pushes to one app take turns:
 * a push waits for the one before it to end (its deploy and its ref update), so the hook of the
 * next one sees where main is and refuses a push made from an older main.
 */
export function gitHandler(
  o: GitHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const pushes = new KeyedLock();
  return async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const m = GIT_PATH.exec(url.pathname);
      if (m === null)
        throw new PaasError(PaasErrorCodes.NOT_FOUND, 'git lives at /git/<app>.git (smart HTTP)', {
          status: 404,
        });
      const app = m[1] ?? '';
      const found = await o.controller.getApp(app);
      await o.repos.ensure(app, String(found.createdAt));
      const serve = (): Promise<void> =>
        serveGit(req, res, {
          projectRoot: o.repos.root,
          pathInfo: `/${app}.git${m[2] ?? ''}`,
          env: {
            FLOTILLA_HOOK_URL: `${o.apiUrl()}/internal/git/${app}/deploy`,
            FLOTILLA_HOOK_TOKEN: o.token,
          },
          logger: o.logger,
        });
      if (m[2] === '/git-receive-pack') await pushes.run(app, serve);
      else await serve();
    } catch (err) {
      req.resume();
      const { status, body } = errorResponse(err);
      if (!res.headersSent) send(res, status, body);
    }
  };
}
