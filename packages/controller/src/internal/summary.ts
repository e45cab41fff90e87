import type { Release, ReleaseSummary } from '../release.js';

/** A release without its config values, for events: its config var names, sorted. */
export function releaseSummary(release: Release): ReleaseSummary {
  const { config, ...rest } = release;
  return { ...rest, configKeys: Object.keys(config).sort() };
}
