import type { Routes } from '../http/routes.js';
import { appRoutes } from './apps.js';
import { artifactRoutes } from './artifacts.js';
import { buildRoutes } from './builds.js';
import { configRoutes } from './config-vars.js';
import type { ApiDeps } from './deps.js';
import { domainRoutes } from './domains.js';
import { dynoRoutes } from './dynos.js';
import { eventRoutes } from './events.js';
import { formationRoutes } from './formation.js';
import { gitDeployRoutes } from './git-deploy.js';
import { hostRoutes } from './hosts.js';
import { logRoutes } from './logs.js';
import { releaseRoutes } from './releases.js';

/** Adds every route of the platform API to `routes`. */
export function apiRoutes(routes: Routes, deps: ApiDeps, apiUrl: () => string): void {
  appRoutes(routes, deps);
  configRoutes(routes, deps);
  buildRoutes(routes, deps);
  releaseRoutes(routes, deps);
  formationRoutes(routes, deps);
  dynoRoutes(routes, deps);
  domainRoutes(routes, deps);
  logRoutes(routes, deps, apiUrl);
  hostRoutes(routes, deps);
  eventRoutes(routes, deps);
  artifactRoutes(routes, deps);
  gitDeployRoutes(routes, deps);
}
