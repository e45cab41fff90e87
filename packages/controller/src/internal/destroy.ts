import { removeAppGarbage } from './app-garbage.js';
import type { BuildService } from './builds.js';
import type { DomainService } from './domains.js';
import { waitUntil } from './notifier.js';
import type { ControllerParts } from './parts.js';
import { notFound } from './repo.js';

/**
 * Destroys an app under its lock: marks it `destroying` (everything else then refuses it),
 * cancels its builds and waits for them to end, removes its formations and waits until its jobs
 * are gone, removes its routes and domains, then what only it owns on disk and in Docker (slugs
 * no other app's build names, its images, its build cache: best effort, see
 * `removeAppGarbage`), its cluster release records and every record of the app, the app's own
 * record last. A destroy cut short is finished by running it again: until that last delete the
 * app is there, marked `destroying`, and its name cannot be taken again, so nothing of the old
 * app is ever deleted from under a new app of the same name.
 */
export async function destroyApp(
  p: ControllerParts,
  name: string,
  options: { readonly signal?: AbortSignal },
  builds: BuildService,
  domains: DomainService,
): Promise<void> {
  const got = await p.repo.app(name, options);
  if (got === undefined) throw notFound(name);
  const lock = await p.locks.acquire(name, 'destroy', {
    onBusy: 'wait',
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  try {
    // From here on the app refuses everything else.
    for (let i = 0; i < 32; i++) {
      const cur = await p.repo.app(name, options);
      if (cur === undefined) return;
      if (cur.record.destroying === true) break;
      const res = await p.store.txn({
        compare: [
          {
            key: p.keys.app(name),
            target: 'modRevision',
            op: '==',
            value: cur.kv.modRevision,
          },
        ],
        success: [
          {
            op: 'put',
            key: p.keys.app(name),
            value: JSON.stringify({ ...cur.record, destroying: true }),
          },
        ],
      });
      if (res.succeeded) break;
    }
    await builds.cancel(name, notFound(name));
    for (const f of await p.cluster.formations({ app: name }))
      await p.cluster.removeFormation(name, f.release);
    await p.mirror.ready;
    const gone = await waitUntil(
      p.mirror.changed,
      () =>
        p.mirror.jobs(name).every((j) => j.state === 'down' || j.state === 'crashed')
          ? true
          : undefined,
      { timeoutMs: p.o.deploy.stopTimeoutMs, clock: p.o.clock, signal: options.signal },
    );
    if ('aborted' in gone) options.signal?.throwIfAborted();
    await domains.removeAll(name, options);
    // Before the records that say what is the app's: a destroy cut short and run again finds it.
    await removeAppGarbage(p, name, options);
    await p.store.deletePrefix(p.cluster.keys.releasesOf(name));
    for (const prefix of [
      p.keys.releasesOf(name),
      p.keys.buildsOf(name),
      p.keys.outputOfApp(name),
      p.keys.deploymentsOf(name),
    ])
      await p.store.deletePrefix(prefix);
    // Last: from here on the name is free, and a new app of that name owns what it writes.
    await p.store.delete(p.keys.app(name));
    p.emit('app.destroyed', { app: name });
  } finally {
    await lock.release().catch(() => undefined);
  }
}
