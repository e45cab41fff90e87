/** An app: a name, its meta, and where its releases stand. */
export interface App {
  /** A DNS label: 1 to 63 of `a-z 0-9 -`, starting with a letter, not ending with `-`. */
  readonly name: string;
  /** When it was created, ms since the epoch. */
  readonly createdAt: number;
  /** Free-form labels (owner, team, stack). */
  readonly meta: Readonly<Record<string, string>>;
  /** The newest release version (`5` for `v5`), 0 before the first. */
  readonly latestRelease: number;
  /** The release that serves now (`v4`), once a deploy went live. */
  readonly liveRelease: string | undefined;
}

/** What {@link Controller.createApp} takes. */
export interface CreateAppInput {
  /** A DNS label; a random one (`quiet-river-4821`) when absent. */
  readonly name?: string;
  /** Free-form labels: at most 32, keys `[A-Za-z0-9_.-]`, values up to 1 KiB. */
  readonly meta?: Readonly<Record<string, string>>;
}
