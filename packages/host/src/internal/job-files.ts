import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AssignedJob, ProcessDefinition, ReleaseRecord } from '@flotilla/cluster';
import type { ArtifactCache } from '../artifact-cache.js';
import { extractCachedSlug } from '../extract-cached-slug.js';
import type { Driver } from '../driver.js';
import { HostError, HostErrorCodes } from '../errors.js';

/** What a job runs, once its files are in place. */
export interface PreparedJob {
  readonly release: ReleaseRecord;
  readonly def: ProcessDefinition;
  /** `<workDir>/<job id>`: the extracted slug, or an image job's empty scratch dir. */
  readonly dir: string;
  /** The image to run, for a release whose artifact is one. */
  readonly image: string | undefined;
}

/**
 * Checks that a job can run from its release on `driver` and puts its files in place: the
 * slug fetched (once per host, verified) and extracted into `<workDir>/<job id>`, or for an
 * image an empty scratch dir there. Throws a coded error for a release that cannot be read,
 * a process type it lacks, an image on a driver that runs slugs, and whatever fetching and
 * extracting throw. `onDir` is told the dir before anything is written to it, so the caller
 * can remove it on failure.
 */
export async function prepareJobFiles(options: {
  readonly job: AssignedJob;
  readonly driver: Pick<Driver, 'name' | 'runsImages'>;
  readonly artifacts: ArtifactCache;
  readonly workDir: string;
  /** Passed to `extractSlug`. */
  readonly slugLimits?: { readonly maxBytes?: number; readonly maxEntries?: number };
  readonly signal: AbortSignal;
  readonly onDir: (dir: string) => void;
}): Promise<PreparedJob> {
  const { job, driver, signal } = options;
  const { record } = job;
  const id = record.id;
  const release = job.release;
  if (release === undefined)
    throw (
      job.releaseError ??
      new HostError(
        HostErrorCodes.INVALID_SPEC,
        `release ${record.release} of ${record.app} cannot be read`,
        { jobId: id },
      )
    );
  const def = release.processes[record.type];
  if (def === undefined || !Object.hasOwn(release.processes, record.type))
    throw new HostError(
      HostErrorCodes.INVALID_SPEC,
      `release ${release.release} of ${release.app} has no process type ${record.type}`,
      { jobId: id },
    );
  const { artifact } = release;
  if (artifact.type === 'image' && driver.runsImages !== true)
    throw new HostError(
      HostErrorCodes.ARTIFACT_INVALID,
      `release ${release.release} of ${release.app} is an image: the ${driver.name} driver runs slugs`,
      { jobId: id },
    );
  const dir = join(options.workDir, id);
  await rm(dir, { recursive: true, force: true });
  options.onDir(dir);
  if (artifact.type === 'slug') {
    await extractCachedSlug(options.artifacts, artifact, dir, { ...options.slugLimits, signal });
  } else {
    // An image brings its own files: the job gets an empty scratch dir as its cwd.
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
  signal.throwIfAborted();
  return { release, def, dir, image: artifact.type === 'image' ? artifact.image : undefined };
}
