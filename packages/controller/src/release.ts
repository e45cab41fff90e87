/** A release `vN` of an app: immutable, a build plus config vars plus process types. */
export interface Release {
  /** `v1`, `v2`, ... allocated by compare-and-set: two concurrent changes never share one. */
  readonly id: string;
  /** N of `vN`. */
  readonly version: number;
  readonly app: string;
  /** The build it runs; none for a release that only changed config before the first build. */
  readonly build: string | undefined;
  /** Config vars. Secrets: never logged by the controller. */
  readonly config: Readonly<Record<string, string>>;
  /** Process types and their commands, from the build. */
  readonly processTypes: Readonly<Record<string, string>>;
  /** What made it: `Deploy b-1a2b3c4d5e6f`, `Set FOO, BAR`, `Rollback to v3`. */
  readonly description: string;
  /** Who asked, when known. */
  readonly user?: string;
  readonly createdAt: number;
}

/** Options of calls that make a release and deploy it. */
export interface ReleaseOptions {
  /** Who asked, for the release's description and hooks. */
  readonly user?: string;
  /** Deploy it (default true when the app has a build). */
  readonly deploy?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * A {@link Release} as events carry it (`release.created`): config var names only, never their
 * values, since events reach logs, dashboards and SSE streams. Read the values with
 * `getRelease` or `getConfig`.
 */
export type ReleaseSummary = Omit<Release, 'config'> & {
  /** The names of the release's config vars, sorted. */
  readonly configKeys: readonly string[];
};
