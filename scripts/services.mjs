// Engines the integration suites run against, started for `npm test` on loopback with fresh
// data and stopped after the run. Suites read their addresses from the environment returned
// here. When an engine is needed and cannot be started, startServices throws an error that
// names what is missing: nothing is skipped silently.
//
// FLOTILLA_ETCD_ENDPOINTS  set by us (or by you, to test against an etcd you run)
import { startEtcd } from './etcd.mjs';

/**
 * @param {{ root: string }} _options
 * @returns {Promise<{ env: Record<string, string>, stop: () => Promise<void> }>}
 */
export async function startServices(_options) {
  const env = {};
  const stops = [];
  if (process.env.FLOTILLA_ETCD_ENDPOINTS) {
    console.log(`> etcd: using ${process.env.FLOTILLA_ETCD_ENDPOINTS}`);
  } else {
    // Throws, naming the Debian packages to install, when etcd is missing.
    const etcd = await startEtcd();
    console.log(`> etcd: started at ${etcd.endpoint} (data ${etcd.dataDir})`);
    env.FLOTILLA_ETCD_ENDPOINTS = etcd.endpoint;
    stops.push(() => etcd.stop());
  }
  return {
    env,
    stop: async () => {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
