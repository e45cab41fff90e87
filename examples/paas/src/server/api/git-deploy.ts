import { mkdir, rm } from 'node:fs/promises';
import type { Build } from '@flotilla/controller';
import { z } from 'zod';
import { validate } from '../http/body.js';
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
      const done = await d.controller.waitForBuild(app, build.id);
      const failure = await deployFailure(d, app, done);
      if (failure === undefined) {
        const url = d.appUrl(app);
        await out.write(
          formatDeployLine({
            kind: 'result',
            ok: true,
            message: `-----> ${done.release ?? 'Released'}: ${app} deployed${url === undefined ? '' : ` to ${url}`}`,
          }),
        );
      } else {
        for (const line of failure.details) await say(line);
        await out.write(
          formatDeployLine({
            kind: 'result',
            ok: false,
            message: ` !     Push rejected: ${failure.reason}`,
          }),
        );
      }
    } catch (err) {
      await out.write(
        formatDeployLine({
          kind: 'result',
          ok: false,
          message: ` !     Push rejected: ${err instanceof Error ? err.message : String(err)}`,
        }),
      );
    } finally {
      out.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/**
 * Why a finished build did not go live, or undefined when it did: the build failed, or its
 * release's deploy failed (and was rolled back). Details are the failed jobs' last log lines.
 */
async function deployFailure(
  d: ApiDeps,
  app: string,
  build: Build,
): Promise<{ reason: string; details: string[] } | undefined> {
  if (build.status !== 'succeeded')
    return { reason: build.error ?? 'the build failed', details: [] };
  if (build.release === undefined) return { reason: 'the build made no release', details: [] };
  const deployment = (await d.controller.listDeployments(app)).find(
    (x) => x.release === build.release,
  );
  if (deployment?.status === 'succeeded') return undefined;
  const details: string[] = [];
  for (const job of deployment?.failedJobs ?? []) {
    details.push(` !     ${job.type} (${job.id}): ${job.message ?? job.state}`);
    for (const line of job.logs.slice(-20)) details.push(`       | ${line}`);
  }
  const live = (await d.controller.getApp(app)).liveRelease;
  return {
    reason: `${deployment?.reason ?? `the deploy of ${build.release} did not finish`}${live === undefined ? '' : ` (${live} still serves)`}`,
    details,
  };
}
