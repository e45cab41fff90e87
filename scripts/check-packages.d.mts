/**
 * Packs every package under `root`/packages (default: this repository) with npm and checks the
 * tarballs as a consumer gets them; returns the problems found, one a line (empty: all good).
 */
export function checkPackages(options?: {
  root?: string;
  /** Package directory names to check (default: all). */
  only?: string[];
  /** Compile the README ```ts blocks (default true). */
  compile?: boolean;
  /** How long the import of each package's main entry may take, in ms (default 30 000). */
  importTimeoutMs?: number;
}): Promise<string[]>;
/** Whether `version` is in `range` (the semver forms package.json files here use). */
export function satisfies(version: string, range: string): boolean;
/** The ```ts blocks of a markdown text, with the 1-based line of their opening fence. */
export function codeBlocks(markdown: string): { line: number; code: string }[];
