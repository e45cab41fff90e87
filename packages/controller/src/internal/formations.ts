import type { ProcessSpec } from '@flotilla/cluster';
import { MAX_PROCESS_COUNT } from '@flotilla/cluster';
import type { DeployOptions } from '../deployment.js';
import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { FormationEntry, FormationPatchEntry } from '../formation.js';
import type { Release } from '../release.js';
import { invalid, releaseNumber, show } from './names.js';
import { placeFor } from './placement.js';
import type { ControllerParts } from './parts.js';
import type { AppRecord, FormationSetting } from './records.js';

/**
 * Apps' formations: quantities and sizes per process type, kept on the app record. Quantities
 * go at once into the live release's cluster formation (the scheduler starts or stops jobs);
 * a size change is a rolling restart by the deploy path.
 */
export class FormationService {
  constructor(readonly p: ControllerParts) {}

  /** The release whose process types the formation is about: the live one, else the newest with a build. */
  async release(
    app: AppRecord,
    options: { readonly signal?: AbortSignal },
  ): Promise<Release | undefined> {
    if (app.live !== undefined)
      return this.p.repo.release(app.name, releaseNumber(app.live.release), options);
    const releases = await this.p.repo.releases(app.name, options);
    return [...releases].reverse().find((r) => r.build !== undefined);
  }

  /** Quantity and size of each process type of the app. */
  async get(app: string, options: { readonly signal?: AbortSignal }): Promise<FormationEntry[]> {
    const record = await this.p.repo.requireApp(app, options);
    const release = await this.release(record, options);
    const types = new Set([
      ...Object.keys(release?.processTypes ?? {}),
      ...Object.keys(record.formation),
    ]);
    types.delete('release');
    return [...types].sort().map((type) => {
      const f = record.formation[type];
      const size = f?.size ?? this.p.o.defaultSize;
      return {
        type,
        quantity: f?.quantity ?? 0,
        size,
        resources: this.p.deployer.resources(size),
        command: release?.processTypes[type],
      };
    });
  }

  /** Changes quantities and sizes (see `Controller.patchFormation`). */
  async patch(
    app: string,
    patch: Readonly<Record<string, FormationPatchEntry>>,
    options: DeployOptions,
  ): Promise<FormationEntry[]> {
    if (
      typeof patch !== 'object' ||
      patch === null ||
      Array.isArray(patch) ||
      Object.keys(patch).length === 0
    )
      throw invalid(
        'formation',
        'give { type: { quantity?, size? } } for at least one process type',
        app,
      );
    const record = await this.p.repo.requireApp(app, options);
    const release = await this.release(record, options);
    if (release === undefined)
      throw new ControllerError(
        ControllerErrorCodes.NO_BUILD,
        `app ${app} has no build yet: push one, then scale its process types`,
        { app },
      );
    const changes: Record<string, FormationPatchEntry> = {};
    for (const [type, entry] of Object.entries(patch)) {
      if (!Object.hasOwn(release.processTypes, type) || type === 'release')
        throw new ControllerError(
          ControllerErrorCodes.UNKNOWN_PROCESS_TYPE,
          `${release.id} of ${app} has no process type ${show(type)} (it has ${
            Object.keys(release.processTypes)
              .filter((t) => t !== 'release')
              .join(', ') || 'none'
          })`,
          { app, path: `formation.${type.slice(0, 40)}` },
        );
      if (typeof entry !== 'object' || entry === null)
        throw invalid(`formation.${type}`, 'give { quantity?, size? }', app);
      if (
        entry.quantity !== undefined &&
        (!Number.isSafeInteger(entry.quantity) ||
          entry.quantity < 0 ||
          entry.quantity > MAX_PROCESS_COUNT)
      )
        throw invalid(
          `formation.${type}.quantity`,
          `quantity must be a whole number from 0 to ${MAX_PROCESS_COUNT}, got ${show(entry.quantity)}`,
          app,
        );
      if (
        entry.size !== undefined &&
        (typeof entry.size !== 'string' || !Object.hasOwn(this.p.o.sizes, entry.size))
      )
        throw invalid(
          `formation.${type}.size`,
          `${show(entry.size)} is not a size: use ${Object.keys(this.p.o.sizes).join(', ')}`,
          app,
        );
      changes[type] = entry;
    }
    const lock = await this.p.locks.acquire(app, 'scale', {
      onBusy: options.onBusy ?? 'wait',
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    try {
      const current = await this.p.repo.requireApp(app, options);
      const next: Record<string, FormationSetting> = {};
      let resized = false;
      for (const [type, entry] of Object.entries(changes)) {
        const was = current.formation[type] ?? {
          quantity: type === 'web' && current.live === undefined ? 1 : 0,
          size: this.p.o.defaultSize,
        };
        next[type] = { quantity: entry.quantity ?? was.quantity, size: entry.size ?? was.size };
        if (current.live !== undefined && next[type].size !== was.size) resized = true;
      }
      if (resized && current.live !== undefined) {
        await this.p.deployer.deploy(app, releaseNumber(current.live.release), 'scale', {
          ...options,
          locked: true,
          formation: next,
        });
      } else {
        await this.p.repo.updateApp(app, (a) => ({
          next: { ...a, formation: { ...a.formation, ...next } },
        }));
        if (current.live !== undefined) await this.#applyCounts(app, current.live.deployment, next);
      }
      this.p.emit('scale', { app, processes: next });
    } finally {
      await lock.release().catch(() => undefined);
    }
    return this.get(app, options);
  }

  /** Writes new counts into the live cluster formation: the scheduler starts or stops jobs. */
  async #applyCounts(
    app: string,
    clusterRelease: string,
    next: Readonly<Record<string, FormationSetting>>,
  ): Promise<void> {
    const existing = (await this.p.cluster.formations({ app })).find(
      (f) => f.release === clusterRelease,
    );
    // Constraints stay (an operator's), and an image release's jobs go only to hosts that run
    // images, also when the formation was written before that rule.
    const artifact = (await this.p.cluster.getRelease(app, clusterRelease))?.artifact.type;
    const processes: Record<string, ProcessSpec> = { ...existing?.processes };
    for (const [type, f] of Object.entries(next))
      processes[type] = {
        ...processes[type],
        count: f.quantity,
        resources: processes[type]?.resources ?? this.p.deployer.resources(f.size),
      };
    if (artifact !== undefined)
      for (const [type, spec] of Object.entries(processes))
        processes[type] = placeFor(artifact, spec);
    await this.p.cluster.setFormation({ app, release: clusterRelease, processes });
  }
}
