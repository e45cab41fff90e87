import { mkdir, rm } from 'node:fs/promises';
import { isFlotillaError } from '@flotilla/core';
import { z } from 'zod';
import { validate } from '../http/body.js';
import { failedDynoLines, userMessage } from '../http/errors.js';
import type { Routes } from '../http/routes.js';
import { ResponseStream } from '../http/stream.js';
import { formatDeployLine } from '../git/protocol.js';
import { extractTar, tempPath } from '../../internal/files.js';
import type { ApiDeps } from './deps.js';
import { appName } from './schemas.js';
import { MAX_SOURCE_BYTES } from './builds.js';

const sha = z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'a commit sha');

/**
 * `/internal/git/{app}/deploy`: what the `pre-receive` hook of an app's repository calls with
 * `git archive` of the pushed commit. Builds and deploys it, streaming the output back as it
 * comes; the last line says where the app answers, or why the deploy failed.
 */
export function gitDeployRoutes(routes: Routes, d: ApiDeps): void {
  routes.on('POST', '/internal/git/:app/deploy', async ({ params, req, res, signal }) => {
    const app = validate(appName, params.app);
    const commit = validate(sha, req.headers['x-flotilla-commit']);
    await d.controller.getApp(app, { signal });
    await mkdir(d.uploadDir, { recursive: true });
    const dir = tempPath(d.uploadDir, `${app}-${commit.slice(0, 8)}`);
    await extractTar(req, dir, MAX_SOURCE_BYTES);
    const out = new ResponseStream(res, 'application/x-ndjson');
    const say = (line: string): Promise<void> =>
      out.write(formatDeployLine({ kind: 'output', line }));
    try {
      await say(`-----> Building ${app} from ${commit.slice(0, 7)}...`);
      // A push given up (ctrl-c: git, then the hook, go away) cancels its build: the ref does
      // not move, so neither may what serves.
      const build = await d.controller.createBuild(
        app,
        { type: 'git', dir, sha: commit },
        { signal },
      );
      for await (const l of d.controller.buildOutput(app, build.id, { follow: true })) {
        await say(l.line);
      }
      const outcome = await d.controller.waitForDeploy(app, build.id);
      if (outcome.status === 'live') {
        const url = d.appUrl(app);
        // Deployed, yet nothing answers at the URL: say so, and how to start a web dyno.
        const formation = await d.controller.getFormation(app, { signal }).catch(() => []);
        const web = formation.find((f) => f.type === 'web');
        if (web !== undefined && web.quantity === 0)
          await say(
            `       no web dyno runs, so ${url ?? 'the app'} answers 503: flotilla ps:scale web=1 -a ${app}`,
          );
        await out.write(
          formatDeployLine({
            kind: 'result',
            ok: true,
            message: `-----> ${outcome.release ?? 'Released'}: ${app} deployed${url === undefined ? '' : ` to ${url}`}`,
          }),
        );
      } else {
        for (const line of failedDynoLines(outcome.deployment)) await say(line);
        const live = outcome.status === 'deploy-failed' ? outcome.liveRelease : undefined;
        await out.write(
          formatDeployLine({
            kind: 'result',
            ok: false,
            message: ` !     Push rejected: ${outcome.reason ?? 'the push did not go live'}${live === undefined ? '' : ` (${live} still serves)`}`,
          }),
        );
      }
    } catch (err) {
      await out.write(
        formatDeployLine({
          kind: 'result',
          ok: false,
          message: ` !     Push rejected: ${isFlotillaError(err) ? userMessage(err) : err instanceof Error ? err.message : String(err)}`,
        }),
      );
    } finally {
      out.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
