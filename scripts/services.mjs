// Engines the integration suites run against. Each is started here, on loopback, with a
// fresh data directory, and stopped after the run. A suite that needs an engine reads its
// address from the environment this returns; when an engine is needed and cannot be
// started, startServices throws an error that names what is missing.
//
// No engine is needed yet: @flotilla/procfile and @flotilla/core are pure.

/**
 * @param {{ root: string }} _options
 * @returns {Promise<{ env: Record<string, string>, stop: () => Promise<void> }>}
 */
export async function startServices(_options) {
  return { env: {}, stop: () => Promise.resolve() };
}
