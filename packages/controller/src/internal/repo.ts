import type { Clock } from '@flotilla/core';
import type { CallOptions, KeyValue, Store, TxnOp, Compare } from '@flotilla/store';
import type { Build } from '../build.js';
import type { Deployment } from '../deployment.js';
import type { Domain } from '../domain.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { Release } from '../release.js';
import type { ControllerKeys } from './keys.js';
import {
  decode,
  parseApp,
  parseBuild,
  parseDeployment,
  parseDomain,
  parseRelease,
  type AppRecord,
} from './records.js';

const CAS_ATTEMPTS = 32;

/** What a release allocation computes from the app and its newest release; undefined writes nothing. */
export type ReleaseDraft = Omit<Release, 'id' | 'version' | 'app' | 'createdAt'>;

/**
 * The controller's records in the store: strict reads, compare-and-set writes. Every
 * read-modify-write re-reads and retries when another writer got there first.
 */
export class Repo {
  constructor(
    readonly store: Store,
    readonly keys: ControllerKeys,
    readonly clock: Clock,
    /**
     * Lists report each record they cannot read here (`FLOTILLA_CONTROLLER_INVALID_RECORD`,
     * with its key) and return the others; without it, they throw.
     */
    readonly onInvalid?: (err: ControllerError) => void,
  ) {}

  /** Decodes a list's records: the unreadable ones reported (see `onInvalid`), never skipped silently. */
  #decodeAll<T>(kvs: readonly KeyValue[], parse: (v: unknown) => T): T[] {
    const out: T[] = [];
    for (const kv of kvs) {
      try {
        out.push(decode(kv, parse));
      } catch (err) {
        if (this.onInvalid === undefined || !(err instanceof ControllerError)) throw err;
        this.onInvalid(err);
      }
    }
    return out;
  }

  // --- apps --------------------------------------------------------------------------------

  async app(
    name: string,
    options: CallOptions = {},
  ): Promise<{ record: AppRecord; kv: KeyValue } | undefined> {
    const kv = await this.store.get(this.keys.app(name), options);
    return kv === undefined ? undefined : { record: decode(kv, parseApp), kv };
  }

  /** The app, or `FLOTILLA_CONTROLLER_APP_NOT_FOUND` (also while it is being destroyed). */
  async requireApp(name: string, options: CallOptions = {}): Promise<AppRecord> {
    const got = await this.app(name, options);
    if (got === undefined || got.record.destroying === true) throw notFound(name);
    return got.record;
  }

  async apps(options: CallOptions = {}): Promise<AppRecord[]> {
    return this.#decodeAll(await this.#list(this.keys.apps, options), parseApp);
  }

  async createApp(record: AppRecord, options: CallOptions = {}): Promise<boolean> {
    const key = this.keys.app(record.name);
    const res = await this.store.txn(
      {
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [{ op: 'put', key, value: JSON.stringify(record) }],
      },
      options,
    );
    return res.succeeded;
  }

  /**
   * Changes the app record by compare-and-set: `change` gets the current record and returns
   * the next (or undefined to write nothing); `extra` ops are written in the same transaction.
   */
  async updateApp<R = AppRecord>(
    name: string,
    change: (
      app: AppRecord,
    ) => { next: AppRecord; ops?: TxnOp[]; compare?: Compare[]; result?: R } | undefined,
    options: CallOptions = {},
  ): Promise<{ app: AppRecord; result: R | undefined; changed: boolean }> {
    return this.updateAppAsync(name, async (app) => change(app), options);
  }

  // --- releases ----------------------------------------------------------------------------

  /**
   * Allocates the next release `vN` by compare-and-set on the app record: of two concurrent
   * allocations, one gets vN and the other retries on top of it (seeing its config).
   */
  async allocateRelease(
    name: string,
    draft: (app: AppRecord, latest: Release | undefined) => ReleaseDraft | undefined,
    options: CallOptions = {},
  ): Promise<Release | undefined> {
    const { result } = await this.updateAppAsync(
      name,
      async (app) => {
        const latest = app.seq === 0 ? undefined : await this.release(name, app.seq, options);
        const d = draft(app, latest);
        if (d === undefined) return undefined;
        const version = app.seq + 1;
        const release: Release = {
          ...d,
          id: `v${version}`,
          version,
          app: name,
          createdAt: this.clock.now(),
        };
        const key = this.keys.release(name, version);
        return {
          next: { ...app, seq: version },
          ops: [{ op: 'put', key, value: JSON.stringify(release) }],
          compare: [{ key, target: 'version', op: '==', value: 0 }],
          result: release,
        };
      },
      options,
    );
    return result;
  }

  /** {@link updateApp} with an async change (it may read other records). */
  async updateAppAsync<R>(
    name: string,
    change: (
      app: AppRecord,
    ) => Promise<{ next: AppRecord; ops?: TxnOp[]; compare?: Compare[]; result?: R } | undefined>,
    options: CallOptions = {},
  ): Promise<{ app: AppRecord; result: R | undefined; changed: boolean }> {
    const key = this.keys.app(name);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const got = await this.app(name, options);
      if (got === undefined || got.record.destroying === true) throw notFound(name);
      const step = await change(got.record);
      if (step === undefined) return { app: got.record, result: undefined, changed: false };
      const res = await this.store.txn(
        {
          compare: [
            { key, target: 'modRevision', op: '==', value: got.kv.modRevision },
            ...(step.compare ?? []),
          ],
          success: [{ op: 'put', key, value: JSON.stringify(step.next) }, ...(step.ops ?? [])],
        },
        options,
      );
      if (res.succeeded) return { app: step.next, result: step.result, changed: true };
    }
    throw conflict(key);
  }

  async release(
    app: string,
    version: number,
    options: CallOptions = {},
  ): Promise<Release | undefined> {
    const kv = await this.store.get(this.keys.release(app, version), options);
    return kv === undefined ? undefined : decode(kv, parseRelease);
  }

  /** Releases, oldest first. */
  async releases(app: string, options: CallOptions = {}): Promise<Release[]> {
    return this.#decodeAll(await this.#list(this.keys.releasesOf(app), options), parseRelease);
  }

  // --- builds ------------------------------------------------------------------------------

  async createBuild(build: Build, options: CallOptions = {}): Promise<void> {
    const key = this.keys.build(build.app, build.id);
    const res = await this.store.txn(
      {
        compare: [
          { key, target: 'version', op: '==', value: 0 },
          // The app must still be there: a build of a destroyed app would be an orphan.
          { key: this.keys.app(build.app), target: 'version', op: '>', value: 0 },
        ],
        success: [{ op: 'put', key, value: JSON.stringify(build) }],
      },
      options,
    );
    if (!res.succeeded) throw notFound(build.app);
  }

  async build(app: string, id: string, options: CallOptions = {}): Promise<Build | undefined> {
    const kv = await this.store.get(this.keys.build(app, id), options);
    return kv === undefined ? undefined : decode(kv, parseBuild);
  }

  /** An app's builds, in the order they were created (the store's create revision). */
  async builds(app: string, options: CallOptions = {}): Promise<Build[]> {
    return this.#decodeAll(
      byCreation(await this.#list(this.keys.buildsOf(app), options)),
      parseBuild,
    );
  }

  /** Every build of every app (for the reaper). */
  async allBuilds(options: CallOptions = {}): Promise<Build[]> {
    return this.#decodeAll(await this.#list(this.keys.builds, options), parseBuild);
  }

  /** Changes a build by compare-and-set; undefined from `change` writes nothing. Undefined when the build is gone. */
  async updateBuild(
    app: string,
    id: string,
    change: (build: Build) => Build | undefined,
    options: CallOptions = {},
  ): Promise<Build | undefined> {
    return this.#cas(this.keys.build(app, id), parseBuild, change, options);
  }

  // --- deployments -------------------------------------------------------------------------

  async putDeployment(d: Deployment, options: CallOptions = {}): Promise<void> {
    await this.store.put(this.keys.deployment(d.app, d.id), JSON.stringify(d), options);
  }

  async deployment(
    app: string,
    id: string,
    options: CallOptions = {},
  ): Promise<Deployment | undefined> {
    const kv = await this.store.get(this.keys.deployment(app, id), options);
    return kv === undefined ? undefined : decode(kv, parseDeployment);
  }

  /** An app's deployments, in the order they were created (the store's create revision). */
  async deployments(app: string, options: CallOptions = {}): Promise<Deployment[]> {
    return this.#decodeAll(
      byCreation(await this.#list(this.keys.deploymentsOf(app), options)),
      parseDeployment,
    );
  }

  async allDeployments(options: CallOptions = {}): Promise<Deployment[]> {
    return this.#decodeAll(await this.#list(this.keys.deployments, options), parseDeployment);
  }

  async updateDeployment(
    app: string,
    id: string,
    change: (d: Deployment) => Deployment | undefined,
    options: CallOptions = {},
  ): Promise<Deployment | undefined> {
    return this.#cas(this.keys.deployment(app, id), parseDeployment, change, options);
  }

  // --- domains -----------------------------------------------------------------------------

  async domains(options: CallOptions = {}): Promise<Domain[]> {
    return this.#decodeAll(await this.#list(this.keys.domains, options), parseDomain);
  }

  async domain(hostname: string, options: CallOptions = {}): Promise<Domain | undefined> {
    const kv = await this.store.get(this.keys.domain(hostname), options);
    return kv === undefined ? undefined : decode(kv, parseDomain);
  }

  /** Claims a hostname for an app; false when any app has it. */
  async claimDomain(domain: Domain, options: CallOptions = {}): Promise<boolean> {
    const key = this.keys.domain(domain.hostname);
    const res = await this.store.txn(
      {
        compare: [
          { key, target: 'version', op: '==', value: 0 },
          { key: this.keys.app(domain.app), target: 'version', op: '>', value: 0 },
        ],
        success: [{ op: 'put', key, value: JSON.stringify(domain) }],
      },
      options,
    );
    return res.succeeded;
  }

  async putDomain(domain: Domain, options: CallOptions = {}): Promise<void> {
    await this.store.put(this.keys.domain(domain.hostname), JSON.stringify(domain), options);
  }

  async deleteDomain(hostname: string, options: CallOptions = {}): Promise<boolean> {
    return (await this.store.delete(this.keys.domain(hostname), options)).deleted > 0;
  }

  // --- helpers -----------------------------------------------------------------------------

  async #cas<T>(
    key: string,
    parse: (v: unknown) => T,
    change: (cur: T) => T | undefined,
    options: CallOptions,
  ): Promise<T | undefined> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const kv = await this.store.get(key, options);
      if (kv === undefined) return undefined;
      const cur = decode(kv, parse);
      const next = change(cur);
      if (next === undefined) return cur;
      const res = await this.store.txn(
        {
          compare: [{ key, target: 'modRevision', op: '==', value: kv.modRevision }],
          success: [{ op: 'put', key, value: JSON.stringify(next) }],
        },
        options,
      );
      if (res.succeeded) return next;
    }
    throw conflict(key);
  }

  /** Every key under a prefix, paging through large ones. */
  async #list(prefix: string, options: CallOptions): Promise<KeyValue[]> {
    const out: KeyValue[] = [];
    let after: string | undefined;
    for (;;) {
      const res = await this.store.list(prefix, {
        ...options,
        limit: 1000,
        ...(after === undefined ? {} : { after }),
      });
      out.push(...res.kvs);
      if (!res.more) return out;
      after = res.kvs[res.kvs.length - 1]?.key;
    }
  }

  /** Every key-value under a prefix (paged). */
  listAll(prefix: string, options: CallOptions = {}): Promise<KeyValue[]> {
    return this.#list(prefix, options);
  }
}

/** Key-values in the order their keys were created: ids are random, clocks can tie. */
function byCreation(kvs: KeyValue[]): KeyValue[] {
  return kvs.sort((a, b) => a.createRevision - b.createRevision);
}

export function notFound(app: string): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.APP_NOT_FOUND,
    `there is no app ${app}: check the name against the list of apps, or create it`,
    { app },
  );
}

export function conflict(key: string): ControllerError {
  return new ControllerError(
    ControllerErrorCodes.CONFLICT,
    `${key} kept changing under ${CAS_ATTEMPTS} compare-and-set attempts: retry`,
    { key, retryable: true },
  );
}
