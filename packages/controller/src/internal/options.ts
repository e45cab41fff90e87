import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { isResourceAmount, isValidId, type Resources } from '@flotilla/cluster';
import { type Clock, type Logger, silentLogger, systemClock } from '@flotilla/core';
import type { Store } from '@flotilla/store';
import type { ArtifactStore } from '../artifact-store.js';
import type { Builder, ImageBuilder } from '../builder.js';
import type { ControllerOptions } from '../controller.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import { DEFAULT_SIZE, DEFAULT_SIZES } from '../formation.js';
import type { JobLogSource } from '../job-logs.js';
import type { OneOffRunner } from '../one-off.js';
import type { RouteTableLike } from '../route-table.js';
import { dockerImageBuilder } from './build-runner.js';
import { checkHostname } from './names.js';
import type { RolloutSettings } from './rollout.js';

/** {@link ControllerOptions} checked, with their defaults. */
export interface ResolvedOptions {
  readonly store: Store;
  readonly prefix: string;
  readonly clusterPrefix: string;
  readonly discoveryPrefix: string;
  readonly artifacts: ArtifactStore;
  readonly workDir: string;
  readonly builder: Builder | undefined;
  readonly imageBuilder: ImageBuilder | undefined;
  readonly runner: OneOffRunner | undefined;
  readonly routes: RouteTableLike | undefined;
  readonly baseDomain: string | undefined;
  readonly logs: JobLogSource | undefined;
  readonly sizes: Readonly<Record<string, Resources>>;
  readonly defaultSize: string;
  readonly deploy: RolloutSettings;
  readonly keepReleases: number;
  readonly leaseTtlMs: number;
  readonly cacheLockTimeoutMs: number;
  readonly hookTimeoutMs: number;
  readonly id: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Checks a controller's options (`FLOTILLA_CONTROLLER_INVALID_INPUT` naming the option) and fills in defaults. */
export function resolveOptions(o: ControllerOptions): ResolvedOptions {
  const bad = (path: string, message: string): never => {
    throw new ControllerError(
      ControllerErrorCodes.INVALID_INPUT,
      `Controller option ${path}: ${message}`,
      { path },
    );
  };
  if (typeof o !== 'object' || o === null) bad('options', 'give { store, artifacts, workDir }');
  if (typeof o.store?.txn !== 'function')
    bad('store', 'a Store is needed (MemoryStore, SqliteStore, EtcdStore)');
  if (typeof o.artifacts?.put !== 'function')
    bad('artifacts', 'an ArtifactStore is needed (DirectoryArtifactStore)');
  if (typeof o.workDir !== 'string' || o.workDir === '' || o.workDir.includes('\0'))
    bad('workDir', 'a directory path is needed');
  const sizes = o.sizes ?? DEFAULT_SIZES;
  for (const [name, r] of Object.entries(sizes)) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name))
      bad(`sizes.${name.slice(0, 40)}`, 'size names are 1 to 63 of a-z 0-9 -');
    if (!isResourceAmount(r?.cpu) || !isResourceAmount(r?.memory) || r.cpu < 1 || r.memory < 1)
      bad(`sizes.${name}`, 'cpu (millicores) and memory (MiB) must be whole numbers above 0');
  }
  const defaultSize =
    o.defaultSize ?? (Object.hasOwn(sizes, DEFAULT_SIZE) ? DEFAULT_SIZE : Object.keys(sizes)[0]);
  if (defaultSize === undefined || !Object.hasOwn(sizes, defaultSize))
    bad('defaultSize', 'must name one of the sizes');
  const baseDomain =
    o.baseDomain === undefined ? undefined : checkHostname(o.baseDomain, 'baseDomain', 1);
  if (baseDomain?.includes('*') === true)
    bad('baseDomain', 'a wildcard is no base domain: give apps.example.com or localhost');
  // `<app>.<baseDomain>` must stay a domain name (253 at most) for every app name (63 at most).
  if (baseDomain !== undefined && baseDomain.length > 253 - 64)
    bad('baseDomain', `at most ${253 - 64} characters, to leave room for <app>.`);
  if (
    o.docker !== undefined &&
    (typeof o.docker !== 'object' ||
      o.docker === null ||
      typeof o.docker.buildImage !== 'function' ||
      o.docker.client === undefined ||
      o.docker.client === null ||
      (o.docker.removeImage !== undefined && typeof o.docker.removeImage !== 'function') ||
      (o.docker.listImageTags !== undefined && typeof o.docker.listImageTags !== 'function'))
  )
    bad(
      'docker',
      'give { buildImage, client } and optionally removeImage and listImageTags: those functions of @flotilla/docker and a Docker client',
    );
  const id = o.id ?? `controller-${randomBytes(6).toString('hex')}`;
  if (!isValidId(id)) bad('id', 'use 1 to 200 of A-Z a-z 0-9 . _ - @ : +');
  const num = (
    v: number | undefined,
    def: number,
    path: string,
    min: number,
    max: number,
  ): number => {
    if (v === undefined) return def;
    if (!Number.isSafeInteger(v) || v < min || v > max)
      bad(path, `must be a whole number from ${min} to ${max}`);
    return v;
  };
  const d = o.deploy ?? {};
  if ((d.minHealthyMs ?? 0) > 0 && (d.minHealthyMs ?? 0) >= (d.readyTimeoutMs ?? 60_000))
    bad('deploy.minHealthyMs', 'must be below deploy.readyTimeoutMs (60000 unless set)');
  return {
    store: o.store,
    prefix: o.prefix ?? 'controller/',
    clusterPrefix: o.clusterPrefix ?? 'cluster/',
    discoveryPrefix: o.discoveryPrefix ?? 'discovery/',
    artifacts: o.artifacts,
    workDir: resolve(o.workDir),
    builder: o.builder,
    imageBuilder:
      o.imageBuilder ??
      (o.docker === undefined
        ? undefined
        : dockerImageBuilder(o.docker, (o.logger ?? silentLogger).child({ c: 'docker-build' }))),
    runner: o.runner,
    routes: o.routes,
    baseDomain,
    logs: o.logs,
    sizes,
    defaultSize: defaultSize as string,
    deploy: {
      batchSize: num(d.batchSize, 1, 'deploy.batchSize', 1, 100_000),
      surge: num(d.surge, 1, 'deploy.surge', 0, 100_000),
      readyTimeoutMs: num(d.readyTimeoutMs, 60_000, 'deploy.readyTimeoutMs', 1, 86_400_000),
      minHealthyMs: num(d.minHealthyMs, 0, 'deploy.minHealthyMs', 0, 86_400_000),
      stopTimeoutMs: num(d.stopTimeoutMs, 120_000, 'deploy.stopTimeoutMs', 1, 86_400_000),
    },
    keepReleases: num(o.keepReleases, 5, 'keepReleases', 1, 10_000),
    leaseTtlMs: num(o.leaseTtlMs, 10_000, 'leaseTtlMs', 1000, 3_600_000),
    cacheLockTimeoutMs: num(o.cacheLockTimeoutMs, 900_000, 'cacheLockTimeoutMs', 0, 86_400_000),
    hookTimeoutMs: num(o.hookTimeoutMs, 300_000, 'hookTimeoutMs', 1, 86_400_000),
    id,
    clock: o.clock ?? systemClock,
    logger: o.logger ?? silentLogger,
  };
}
