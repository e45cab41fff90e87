import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isFlotillaError, ManualClock } from '@flotilla/core';
import { takeEvents } from '@flotilla/store/testing';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqliteError, SqliteErrorCodes } from './errors.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';

const FIXTURE = fileURLToPath(new URL('../test-fixtures/store-child.mjs', import.meta.url));

let dir: string;
let n = 0;
const stores: SqliteStore[] = [];
const children = new Set<Child>();

beforeAll(() => {
  if (!existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)))) {
    throw new Error('packages/sqlite/dist is missing: run `npx tsc -b` before these tests');
  }
  dir = mkdtempSync(join(tmpdir(), 'flotilla-sqlite-'));
});
afterEach(async () => {
  for (const child of children) {
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
    await child.exited;
  }
  children.clear();
  for (const store of stores.splice(0)) await store.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tempPath = (): string => join(dir, `store-${++n}.db`);

function open(options: SqliteStoreOptions): SqliteStore {
  const store = new SqliteStore(options);
  stores.push(store);
  return store;
}

function openError(options: SqliteStoreOptions): SqliteError {
  try {
    open(options);
  } catch (err) {
    expect(err).toBeInstanceOf(SqliteError);
    expect(isFlotillaError(err)).toBe(true);
    return err as SqliteError;
  }
  throw new Error(`expected opening ${options.path} to fail`);
}

type Message = Record<string, unknown>;

interface Child {
  readonly proc: ChildProcess;
  /** The next line the child reported. */
  next(): Promise<Message>;
  /** Every line the child reports from now until its stdout closes. */
  rest(): Promise<Message[]>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startChild(...args: string[]): Child {
  const proc = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })[
    Symbol.asyncIterator
  ]();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal })),
  );
  const child: Child = {
    proc,
    exited,
    async next() {
      const r = await lines.next();
      if (r.done === true) throw new Error(`the child ended without reporting: ${stderr}`);
      return JSON.parse(r.value as string) as Message;
    },
    async rest() {
      const out: Message[] = [];
      for (;;) {
        const r = await lines.next();
        if (r.done === true) return out;
        out.push(JSON.parse(r.value as string) as Message);
      }
    },
  };
  children.add(child);
  return child;
}

describe('SqliteStore durability', () => {
  it.each(['full', 'normal'] as const)(
    'keeps every acknowledged write after kill -9 (synchronous %s)',
    async (synchronous) => {
      const path = tempPath();
      const child = startChild('write', path, synchronous);
      const acks: Message[] = [];
      while (acks.length < 150) acks.push(await child.next());
      child.proc.kill('SIGKILL');
      // Lines already in the pipe were printed after their write was acknowledged, too.
      acks.push(...(await child.rest()));
      expect((await child.exited).signal).toBe('SIGKILL');

      const store = open({ path });
      const last = acks.at(-1) as { revision: number };
      expect(await store.revision()).toBeGreaterThanOrEqual(last.revision);
      for (const ack of acks as { ack: string; i: number; revision: number }[]) {
        if (ack.ack === 'put') {
          expect(await store.get(`k/${ack.i}`)).toMatchObject({
            value: `v${ack.i}`,
            modRevision: ack.revision,
          });
        } else {
          expect(await store.get(`t/${ack.i}/a`)).toMatchObject({ modRevision: ack.revision });
          expect(await store.get(`t/${ack.i}/b`)).toMatchObject({ modRevision: ack.revision });
        }
      }
      // A transaction the kill interrupted is there whole or not at all.
      const txnKeys = (await store.list('t/')).kvs.map((kv) => kv.key);
      expect(txnKeys.length % 2).toBe(0);
      // The store goes on from where the killed process stopped.
      const next = await store.put('after', 'restart');
      expect(next.revision).toBe(await store.revision());
      expect(next.revision).toBeGreaterThan(last.revision);
    },
  );
});

describe('SqliteStore ownership of the file', () => {
  it('refuses to open a file another process holds, naming that process', async () => {
    const path = tempPath();
    const holder = startChild('hold', path);
    const ready = await holder.next();
    expect(ready).toMatchObject({ ready: true });

    const err = openError({ path });
    expect(err.code).toBe(SqliteErrorCodes.LOCKED);
    expect(err.code).toBe('FLOTILLA_SQLITE_LOCKED');
    expect(err.retryable).toBe(true);
    expect(err.path).toBe(path);
    expect(err.message).toContain('is open in another process');
    if (process.platform === 'linux') {
      expect(err.pid).toBe(holder.proc.pid);
      expect(err.message).toContain(`pid ${String(holder.proc.pid)}`);
    }

    // Once the holder closes the store and exits, the file opens with its data.
    holder.proc.stdin?.end();
    expect((await holder.exited).code).toBe(0);
    const store = open({ path });
    expect((await store.get('held/by'))?.value).toBe(String(holder.proc.pid));
  });

  it('makes a second process fail with FLOTILLA_SQLITE_LOCKED while this one holds the file', async () => {
    const path = tempPath();
    // Opening alone takes the lock, before any read or write.
    const store = open({ path });
    const child = startChild('try-open', path);
    const report = (await child.next()) as {
      error?: { code: string; message: string; pid: number | null };
    };
    expect(report.error?.code).toBe('FLOTILLA_SQLITE_LOCKED');
    if (process.platform === 'linux') expect(report.error?.pid).toBe(process.pid);
    expect((await child.exited).code).toBe(0);
    await store.put('mine', '1');
    expect((await store.get('mine'))?.value).toBe('1');
  });

  it('opens a file that a killed process held', async () => {
    const path = tempPath();
    const holder = startChild('hold', path);
    await holder.next();
    expect(existsSync(`${path}.lock`)).toBe(true);
    holder.proc.kill('SIGKILL');
    await holder.exited;
    // The OS released both of the dead holder's locks, the path's and the file's.
    const store = open({ path });
    expect((await store.get('held/by'))?.value).toBe(String(holder.proc.pid));
  });

  it('refuses a second store on the same file in this process, until the first closes', async () => {
    const path = tempPath();
    const first = open({ path });
    await first.put('a', '1');
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_LOCKED');
    if (process.platform === 'linux') expect(err.message).toContain('this process');
    await first.close();
    const second = open({ path });
    expect((await second.get('a'))?.value).toBe('1');
  });
});

describe('SqliteStore when its file is deleted or replaced', () => {
  const replaced = { code: 'FLOTILLA_SQLITE_REPLACED', retryable: false };

  it('rejects a put with FLOTILLA_SQLITE_REPLACED once its file is unlinked', async () => {
    const path = tempPath();
    const store = open({ path });
    await store.put('a', '1');
    unlinkSync(path);
    await expect(store.put('b', '2')).rejects.toMatchObject({ ...replaced, path });
    // Every later call fails alike, reads too: what they would show is in no file any more.
    await expect(store.get('a')).rejects.toMatchObject(replaced);
    await expect(store.delete('a')).rejects.toMatchObject(replaced);
    // Whoever opens the path next starts empty, and was promised nothing it lacks.
    const next = open({ path });
    expect((await next.list('')).kvs).toEqual([]);
  });

  it('rejects a put with FLOTILLA_SQLITE_REPLACED once another file is renamed over it', async () => {
    const path = tempPath();
    const store = open({ path });
    for (let i = 0; i < 20; i++) await store.put(`old/${i}`, 'x'.repeat(200));
    const lease = await store.grant(60_000);
    const backup = tempPath();
    const restored = new SqliteStore({ path: backup });
    await restored.put('restored', 'yes');
    await restored.close();
    renameSync(backup, path);

    await expect(store.put('late', '1')).rejects.toMatchObject({ ...replaced, path });
    await expect(
      store.txn({ compare: [], success: [{ op: 'put', key: 'late', value: '1' }] }),
    ).rejects.toMatchObject(replaced);
    await expect(store.grant(1000)).rejects.toMatchObject(replaced);
    await expect(store.compact(2)).rejects.toMatchObject(replaced);
    expect(await lease.ended).toBe('closed');

    // The next owner sees the file that was put there, not this store's pages: this store
    // gave up its -wal file, which SQLite would otherwise replay onto the new file.
    const next = open({ path });
    expect((await next.list('')).kvs.map((kv) => [kv.key, kv.value])).toEqual([
      ['restored', 'yes'],
    ]);
    await next.put('after', '1');
    // Closing the orphaned store leaves the new owner's -wal file alone.
    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(true);
    await next.close();
    const reopened = open({ path });
    expect((await reopened.get('after'))?.value).toBe('1');
  });

  it('refuses to open a path restored under a live writer, then opens the restored file whole', async () => {
    const path = tempPath();
    const writer = startChild('write', path, 'normal');
    for (let i = 0; i < 20; i++) expect(await writer.next()).toHaveProperty('ack');
    // Frozen, the writer cannot notice the rename: its pages stay in path-wal, and its lock
    // on the file it opened no longer covers the path.
    writer.proc.kill('SIGSTOP');
    const backup = tempPath();
    const restored = new SqliteStore({ path: backup });
    await restored.put('restored', 'yes');
    await restored.close();
    renameSync(backup, path);

    const err = openError({ path });
    expect(err.code).toBe(SqliteErrorCodes.LOCKED);
    if (process.platform === 'linux') expect(err.pid).toBe(writer.proc.pid);

    // Thawed, the writer's next write finds its file gone, and it stops (its child process
    // dies of the FLOTILLA_SQLITE_REPLACED rejection) having given up its -wal file.
    writer.proc.kill('SIGCONT');
    const { code } = await writer.exited;
    expect(code).not.toBe(0);
    const store = open({ path });
    expect((await store.list('')).kvs.map((kv) => [kv.key, kv.value])).toEqual([
      ['restored', 'yes'],
    ]);
    await store.put('after', '1');
    await store.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();
    const reopened = open({ path });
    expect((await reopened.list('')).kvs.map((kv) => kv.key)).toEqual(['after', 'restored']);
  });

  it('notices by itself within a second, failing open watches and ending leases', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const path = tempPath();
    const store = open({ path, clock });
    const lease = await store.grant(60_000);
    const events = store.watch('')[Symbol.asyncIterator]();
    const failed = expect(events.next()).rejects.toMatchObject(replaced);
    unlinkSync(path);
    await clock.advance(1000);
    await failed;
    expect(await lease.ended).toBe('closed');
    expect(() => store.watch('')).toThrow(expect.objectContaining(replaced) as Error);
  });

  it('does not check a store in memory', async () => {
    const store = open({ path: ':memory:' });
    await store.put('a', '1');
    expect((await store.get('a'))?.value).toBe('1');
  });
});

describe('SqliteStore open errors', () => {
  it('fails with FLOTILLA_SQLITE_OPEN when the directory does not exist', () => {
    const err = openError({ path: join(dir, 'no-such-dir', 'state.db') });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('directory');
  });

  it('fails with FLOTILLA_SQLITE_OPEN on a file that is not a database', () => {
    const path = tempPath();
    writeFileSync(path, 'hello, this is not SQLite '.repeat(100));
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('not an SQLite database');
  });

  it.each([
    ['cut in half', (path: string) => truncateSync(path, Math.floor(statSync(path).size / 2))],
    ['cut inside its header', (path: string) => truncateSync(path, 50)],
    ['cut to its first page', (path: string) => truncateSync(path, 4096)],
  ])('fails with FLOTILLA_SQLITE_OPEN saying a store %s is damaged', async (_, damage) => {
    const path = tempPath();
    const store = new SqliteStore({ path });
    for (let i = 0; i < 100; i++) await store.put(`k/${i}`, 'v'.repeat(500));
    await store.close();
    damage(path);
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('damaged');
    expect(err.message).toContain('restore it from a backup');
    expect(err.message).not.toContain('directory exists');
  });

  it('fails with FLOTILLA_SQLITE_OPEN on a few garbage bytes, saying what to do', () => {
    const path = tempPath();
    writeFileSync(path, Buffer.from([0x53, 0x51, 0x4c, 0x00, 0xff, 0x07]));
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('not an SQLite database');
    expect(err.message).toContain('restore it from a backup');
    expect(err.message).not.toContain('directory exists');
  });

  it('fails with FLOTILLA_SQLITE_OPEN when its lock file holds something else, naming it', () => {
    const path = tempPath();
    writeFileSync(`${path}.lock`, 'not a lock file');
    const err = openError({ path });
    expect(err.code).toBe(SqliteErrorCodes.OPEN);
    expect(err.message).toContain(`delete ${path}.lock`);
    expect(existsSync(path)).toBe(false);
  });

  it('fails calls on a page found damaged after opening as not retryable', async () => {
    const path = tempPath();
    const store = new SqliteStore({ path });
    for (let i = 0; i < 300; i++) await store.put(`k/${i}`, 'v'.repeat(500));
    await store.close();
    const db = new Database(path);
    const root = db
      .prepare<[], { rootpage: number }>("SELECT rootpage FROM sqlite_schema WHERE name = 'kv'")
      .get()?.rootpage as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const bytes = readFileSync(path);
    bytes.fill(0x55, (root - 1) * pageSize, root * pageSize);
    writeFileSync(path, bytes);
    const damaged = open({ path }); // the pages it reads on open are sound
    const err = await damaged.list('k/').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'FLOTILLA_STORE_UNAVAILABLE', retryable: false });
    expect((err as Error).message).toContain('restore it from a backup');
  });

  it("fails with FLOTILLA_SQLITE_OPEN on another application's database, leaving it as it was", () => {
    const path = tempPath();
    const other = new Database(path);
    other.exec('CREATE TABLE users (name TEXT); INSERT INTO users VALUES (1)');
    other.close();
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('not a Flotilla store');
    const again = new Database(path);
    try {
      expect(again.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(again.prepare('SELECT count(*) AS n FROM users').get()).toEqual({ n: 1 });
    } finally {
      again.close();
    }
  });

  it('fails with FLOTILLA_SQLITE_SCHEMA on a file from a newer version', async () => {
    const path = tempPath();
    await open({ path }).close();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_SCHEMA');
    expect(err.schemaVersion).toBe(99);
    expect(err.message).toContain('upgrade @flotilla/sqlite');
  });

  it('fails with FLOTILLA_SQLITE_OPEN on a damaged store', async () => {
    const path = tempPath();
    await open({ path }).close();
    const db = new Database(path);
    db.exec("DELETE FROM meta WHERE name = 'revision'");
    db.close();
    const err = openError({ path });
    expect(err.code).toBe('FLOTILLA_SQLITE_OPEN');
    expect(err.message).toContain('damaged');
  });

  it('refuses bad options with FLOTILLA_STORE_INVALID_ARGUMENT', () => {
    const path = tempPath();
    for (const options of [
      { path, historyLimit: 0 },
      { path, synchronous: 'off' as 'full' },
      { path: '' },
    ]) {
      expect(() => open(options)).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_STORE_INVALID_ARGUMENT' }) as Error,
      );
    }
    expect(existsSync(path)).toBe(false);
  });

  it('returns an ended watch for a signal that has already aborted', async () => {
    const store = open({ path: ':memory:' });
    const seen: string[] = [];
    for await (const ev of store.watch('a', { signal: AbortSignal.abort() })) seen.push(ev.kv.key);
    await store.put('a', '1');
    expect(seen).toEqual([]);
  });

  it("runs on ':memory:' for tests", async () => {
    const store = open({ path: ':memory:' });
    await store.put('k', 'v');
    expect((await store.get('k'))?.value).toBe('v');
  });
});

describe('SqliteStore reopen', () => {
  it('keeps keys, their versions and the store revision', async () => {
    const path = tempPath();
    const first = open({ path });
    await first.put('a', '1');
    await first.put('a', '2');
    await first.put('b', '1');
    await first.txn({
      compare: [],
      success: [
        { op: 'put', key: 'c/1', value: 'x' },
        { op: 'put', key: 'c/2', value: 'y' },
      ],
    });
    await first.delete('b');
    const lease = await first.grant(60_000);
    await first.put('leased', 'v', { lease: lease.id });
    const before = await first.list('');
    await first.close();

    const second = open({ path });
    expect(await second.list('')).toEqual(before);
    expect(await second.revision()).toBe(before.revision);
    expect(await second.get('a')).toMatchObject({ value: '2', version: 2 });
    expect((await second.get('leased'))?.lease).toBe(lease.id);
    // Revisions and lease ids go on; they are never reused.
    expect((await second.put('d', '1')).revision).toBe(before.revision + 1);
    const next = await second.grant(60_000);
    expect(Number(next.id)).toBeGreaterThan(Number(lease.id));
  });

  it('resumes a watch from a revision still in history, then streams live changes', async () => {
    const path = tempPath();
    const first = open({ path });
    const revs: number[] = [];
    for (let i = 0; i < 5; i++) revs.push((await first.put(`w/${i}`, String(i))).revision);
    await first.put('other', 'x');
    await first.delete('w/1');
    await first.close();

    const second = open({ path });
    const controller = new AbortController();
    const watch = second.watch('w/', {
      fromRevision: revs[2] as number,
      signal: controller.signal,
    });
    const events = watch[Symbol.asyncIterator]();
    const replayed = await takeEvents(events, 3);
    expect(replayed.map((e) => [e.type, e.kv.key, e.kv.value])).toEqual([
      ['put', 'w/2', '2'],
      ['put', 'w/3', '3'],
      ['put', 'w/4', '4'],
    ]);
    const [deleted] = await takeEvents(events, 1);
    expect(deleted).toMatchObject({ type: 'delete', kv: { key: 'w/1', version: 0 } });
    const live = await second.put('w/9', '9');
    const [ev] = await takeEvents(events, 1);
    expect(ev).toMatchObject({ type: 'put', revision: live.revision, kv: { key: 'w/9' } });
    controller.abort();
  });

  it('keeps its history bound and its compaction point across a reopen', async () => {
    const path = tempPath();
    const first = open({ path, historyLimit: 10 });
    const start = await first.put('h', '0');
    for (let i = 1; i < 30; i++) await first.put('h', String(i));
    await first.close();

    const second = open({ path, historyLimit: 10 });
    const old = second.watch('h', { fromRevision: start.revision })[Symbol.asyncIterator]();
    await expect(old.next()).rejects.toMatchObject({ code: 'FLOTILLA_STORE_COMPACTED' });
    const from = (await second.revision()) - 5;
    const recent = second.watch('h', { fromRevision: from })[Symbol.asyncIterator]();
    expect((await takeEvents(recent, 6)).map((e) => e.kv.value)).toEqual([
      '24',
      '25',
      '26',
      '27',
      '28',
      '29',
    ]);
    await recent.return?.();

    // compact() persists too.
    const at = await second.revision();
    await second.compact(at);
    await second.close();
    const third = open({ path });
    const compacted = third.watch('h', { fromRevision: at - 1 })[Symbol.asyncIterator]();
    await expect(compacted.next()).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_COMPACTED',
      compactRevision: at,
    });
  });
});

describe('SqliteStore leases across restarts', () => {
  it('restarts the full TTL of leases left by a closed store, then expires them', async () => {
    const path = tempPath();
    const clockA = new ManualClock();
    const first = open({ path, clock: clockA });
    const lease = await first.grant(5000);
    await first.put('svc/a', 'up', { lease: lease.id });
    await clockA.advance(4000);
    await first.close();
    expect(await lease.ended).toBe('closed');

    const clock = new ManualClock();
    const second = open({ path, clock });
    const controller = new AbortController();
    const events = second.watch('svc/', { signal: controller.signal })[Symbol.asyncIterator]();
    // 4 s of the TTL had passed before the restart; after it, the lease has 5 s again.
    await clock.advance(4999);
    expect((await second.get('svc/a'))?.lease).toBe(lease.id);
    await clock.advance(1);
    expect(await second.get('svc/a')).toBeUndefined();
    expect((await takeEvents(events, 1)).map((e) => [e.type, e.kv.key])).toEqual([
      ['delete', 'svc/a'],
    ]);
    await expect(second.put('x', 'y', { lease: lease.id })).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
    });
    controller.abort();

    // The expiry is durable: the lease and its key stay gone after another restart.
    await second.close();
    const third = open({ path, clock: new ManualClock() });
    expect(await third.get('svc/a')).toBeUndefined();
    await expect(third.put('x', 'y', { lease: lease.id })).rejects.toMatchObject({
      code: 'FLOTILLA_STORE_LEASE_NOT_FOUND',
    });
  });

  it('expires the leases of a killed process one TTL after reopening', async () => {
    const path = tempPath();
    const child = startChild('lease', path, '60000');
    const { lease, revision } = (await child.next()) as { lease: string; revision: number };
    child.proc.kill('SIGKILL');
    await child.exited;

    const clock = new ManualClock();
    const store = open({ path, clock });
    expect(await store.revision()).toBe(revision);
    expect((await store.list('svc/')).kvs.map((kv) => [kv.key, kv.lease])).toEqual([
      ['svc/a', lease],
      ['svc/b', lease],
    ]);
    // The lease still exists until it expires: keys can be put on it meanwhile.
    await store.put('svc/c', 'late', { lease });
    const controller = new AbortController();
    const events = store.watch('', { signal: controller.signal })[Symbol.asyncIterator]();
    await clock.advance(59_999);
    expect((await store.list('svc/')).kvs).toHaveLength(3);
    await clock.advance(1);
    const gone = await takeEvents(events, 3);
    expect(gone.map((e) => [e.type, e.kv.key])).toEqual([
      ['delete', 'svc/a'],
      ['delete', 'svc/b'],
      ['delete', 'svc/c'],
    ]);
    expect(new Set(gone.map((e) => e.revision)).size).toBe(1);
    expect((await store.list('')).kvs.map((kv) => kv.key)).toEqual(['plain']);
    controller.abort();
  });
});
