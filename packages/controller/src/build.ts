/**
 * Where a build's source comes from:
 * - `tarball`: a gzipped tar of the app (`git archive --format=tar.gz`, an upload) at `path`;
 *   its sha256 becomes the build's source id;
 * - `git`: a checkout directory (a working tree, `.git` ignored) and the commit `sha` it is at;
 * - `image`: an image already built elsewhere: no build step, the image is released as is.
 */
export type BuildSource =
  | { readonly type: 'tarball'; readonly path: string }
  | { readonly type: 'git'; readonly dir: string; readonly sha: string }
  | {
      readonly type: 'image';
      readonly image: string;
      /** Process types and their commands (the image has no Procfile to read). */
      readonly processTypes: Readonly<Record<string, string>>;
    };

/** How a build made its artifact: buildpacks (a slug), a Dockerfile (an image), or an image given. */
export type BuilderKind = 'buildpack' | 'dockerfile' | 'image';

/** Where a build is: `pending` (its hooks run), `running`, then `succeeded` or `failed`. */
export type BuildStatus = 'pending' | 'running' | 'succeeded' | 'failed';

/** What a successful build produced. */
export type BuildArtifact =
  | {
      readonly type: 'slug';
      /** Hex sha256 of the slug, its id in the {@link ArtifactStore}. */
      readonly sha256: string;
      readonly size: number;
    }
  | { readonly type: 'image'; readonly image: string };

/** A build, as stored. */
export interface Build {
  /** `b-` and 12 hex digits, unique in the app. */
  readonly id: string;
  readonly app: string;
  /** The source: a git sha, or `sha256:<hex>` of a tarball, or the image reference. */
  readonly source: string;
  readonly sourceType: BuildSource['type'];
  readonly builder: BuilderKind;
  readonly status: BuildStatus;
  /** Why it failed, for humans. */
  readonly error?: string;
  /** Once it succeeded. */
  readonly artifact?: BuildArtifact;
  /** Process types and commands (from the Procfile, the buildpack's defaults, the image). */
  readonly processTypes?: Readonly<Record<string, string>>;
  /** The buildpacks that built it, in order. */
  readonly buildpacks?: readonly { readonly name: string; readonly url: string }[];
  /** The release it made, once made (`v7`). */
  readonly release?: string;
  /** The deployment of that release it started, once started (`d-1a2b3c4d5e6f`). */
  readonly deployment?: string;
  /** Why its release could not be deployed, when the deploy failed before it started (or had no record). */
  readonly deployError?: string;
  readonly createdAt: number;
  readonly finishedAt?: number;
  /** The controller instance that runs it; a build whose owner died is marked failed. */
  readonly owner: string;
}

/** One line of a build's output. */
export interface BuildOutputLine {
  /** Its number, from 0, in the build's output. */
  readonly seq: number;
  /** When it was written, ms since the epoch. */
  readonly time: number;
  /** The text, without its newline. Config var values never appear in it unless the build printed them. */
  readonly line: string;
}

/** Options of {@link Controller.createBuild}. */
export interface CreateBuildOptions {
  /** Buildpack URLs or names to use instead of detection. */
  readonly buildpacks?: readonly string[];
  /** Force the builder; default: `dockerfile` when the source has a `Dockerfile` and an image builder is configured, else `buildpack`. */
  readonly builder?: Exclude<BuilderKind, 'image'>;
  /** Release and deploy once built (default true). */
  readonly deploy?: boolean;
  /** Who asked, for the release's description and hooks (`alice@example.com`). */
  readonly user?: string;
  /** Cancels the build while it runs; it is marked failed. */
  readonly signal?: AbortSignal;
}

/** Options of {@link Controller.buildOutput}. */
export interface BuildOutputOptions {
  /** Keep following while the build runs (default true); without it, only what is kept now. */
  readonly follow?: boolean;
  /** Start after this line number (to resume a follow). */
  readonly after?: number;
  readonly signal?: AbortSignal;
}
