// Engines the integration suites run against, started for `npm test` on loopback with fresh
// data and stopped after the run. Suites read their addresses from the environment returned
// here. When an engine is needed and cannot be started, startServices throws an error that
// names what is missing: nothing is skipped silently.
//
// FLOTILLA_ETCD_ENDPOINTS  set by us (or by you, to test against an etcd you run)
// FLOTILLA_DOCKER_HOST     the dockerd socket path: yours when set, else /var/run/docker.sock
//                          when a dockerd answers there, else one we start (scripts/docker.mjs)
import { acquireDocker } from './docker.mjs';
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
  // Throws, naming the Debian package to install, when dockerd is missing and cannot be installed.
  try {
    const docker = await acquireDocker();
    console.log(`> dockerd: ${docker.source === 'own' ? 'started' : 'using'} ${docker.socketPath}`);
    env.FLOTILLA_DOCKER_HOST = docker.socketPath;
    stops.push(() => docker.release());
  } catch (err) {
    for (const stop of stops.reverse()) await stop();
    throw err;
  }
  let stopped;
  return {
    env,
    // once: npm test calls it after vitest and on SIGINT/SIGTERM, which can both happen
    stop: () =>
      (stopped ??= (async () => {
        for (const stop of stops.reverse()) await stop();
      })()),
  };
}
