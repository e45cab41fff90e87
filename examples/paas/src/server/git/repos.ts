import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { KeyedLock } from '../../internal/keyed-lock.js';

const run = promisify(execFile);
const DEFAULT_MAX_PUSH_BYTES = 512 * 1024 * 1024;

/** The git config key holding the app incarnation a repository belongs to. */
const INCARNATION = 'flotilla.incarnation';

/**
 * Whether a repository marked `mark` belongs to the app of `incarnation`: marked with it, or
 * unmarked (`''`, made before repositories were marked: taken as the current app's).
 */
function isOf(mark: string, incarnation: string): boolean {
  return mark === incarnation || mark === '';
}

/**
 * The bare repositories of the apps, one per app under `root` (`<root>/<app>.git`). Each is
 * marked with the incarnation of its app (the app's `createdAt`): a repository of an earlier
 * app of the same name (destroyed while this server was down, or through another server) is
 * never handed to a new one, whose first push would otherwise land on the old history.
 * Operations on one app's repository take turns.
 */
export class GitRepos {
  readonly root: string;
  readonly #hookScript: string;
  readonly #lock = new KeyedLock();
  readonly #maxPushBytes: number;

  /**
   * @param root - the directory of the repositories
   * @param hookEntry - the JavaScript file the `pre-receive` hook runs with this Node
   * @param maxPushBytes - the largest pack a push may send (git's `receive.maxInputSize`;
   *   default 512 MiB, as an uploaded source): a bigger one is refused before it fills the disk
   */
  constructor(root: string, hookEntry: string, maxPushBytes = DEFAULT_MAX_PUSH_BYTES) {
    this.root = root;
    this.#maxPushBytes = maxPushBytes;
    this.#hookScript = `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(hookEntry)}\n`;
  }

  /**
   * The repository of `app`, created (bare, with the deploy hook) on first use. `incarnation`
   * says which app of that name it is for (its `createdAt`): a repository left by an earlier
   * one is replaced by an empty one.
   */
  ensure(app: string, incarnation: string): Promise<string> {
    return this.#lock.run(app, () => this.#ensure(app, incarnation));
  }

  async #ensure(app: string, incarnation: string): Promise<string> {
    const dir = this.#dir(app);
    const mark = await this.#incarnation(dir);
    if (mark !== undefined && !isOf(mark.value, incarnation)) {
      // An earlier app's: its history is not the new app's.
      await this.#discard(app, dir);
    } else if (mark !== undefined) {
      // The hook names this server's Node and build: rewrite it, in case they moved; and the
      // push size limit, in case it changed (or the repository predates it).
      await this.#configure(dir, incarnation);
      return dir;
    }
    // Made aside and renamed into place, so a crash never leaves half a repository.
    const tmp = join(this.root, `.tmp-${app}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(this.root, { recursive: true });
      await run('git', ['init', '--bare', '--quiet', '--initial-branch=main', tmp]);
      await run('git', ['-C', tmp, 'config', 'http.receivepack', 'true']);
      await run('git', ['-C', tmp, 'config', 'receive.denyDeletes', 'false']);
      await this.#configure(tmp, incarnation);
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw new PaasError(PaasErrorCodes.GIT, `cannot create the repository of ${app}`, {
        status: 500,
        cause: err,
      });
    }
    return dir;
  }

  async #configure(dir: string, incarnation: string): Promise<void> {
    await run('git', ['-C', dir, 'config', 'receive.maxInputSize', String(this.#maxPushBytes)]);
    await run('git', ['-C', dir, 'config', INCARNATION, incarnation]);
    await this.#writeHook(dir);
  }

  async #writeHook(dir: string): Promise<void> {
    const hook = join(dir, 'hooks', 'pre-receive');
    await mkdir(join(dir, 'hooks'), { recursive: true });
    await writeFile(hook + '.tmp', this.#hookScript);
    await chmod(hook + '.tmp', 0o755);
    await rename(hook + '.tmp', hook);
  }

  /**
   * Deletes the repository of `app` when the app is destroyed: only if it is the one of
   * `incarnation` (not that of a new app of the same name, created since). Resolves with
   * whether it was deleted.
   */
  remove(app: string, incarnation: string): Promise<boolean> {
    return this.#lock.run(app, async () => {
      const dir = this.#dir(app);
      const mark = await this.#incarnation(dir);
      if (mark === undefined || !isOf(mark.value, incarnation)) return false;
      await this.#discard(app, dir);
      return true;
    });
  }

  /**
   * Deletes what no app owns: leftovers of a crash (half-made `.tmp-*`, half-deleted `.trash-*`)
   * and the repository of every app that no longer exists or was created again since
   * (`incarnationOf(app)` is undefined, or not the repository's). A repository whose app cannot
   * be looked up (`incarnationOf` throws) is kept, and `onError` told. Run at start, before
   * pushes are served. Resolves with the apps whose repositories were deleted.
   */
  async sweep(
    incarnationOf: (app: string) => Promise<string | undefined>,
    onError: (app: string, err: unknown) => void = () => undefined,
  ): Promise<string[]> {
    const names = await readdir(this.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const removed: string[] = [];
    for (const name of names) {
      if (name.startsWith('.tmp-') || name.startsWith('.trash-')) {
        await rm(join(this.root, name), { recursive: true, force: true });
        continue;
      }
      if (!name.endsWith('.git')) continue;
      const app = name.slice(0, -'.git'.length);
      await this.#lock.run(app, async () => {
        const dir = this.#dir(app);
        const mark = await this.#incarnation(dir);
        if (mark === undefined) return;
        let current: string | undefined;
        try {
          current = await incarnationOf(app);
        } catch (err) {
          onError(app, err);
          return;
        }
        if (current !== undefined && isOf(mark.value, current)) return;
        await this.#discard(app, dir);
        removed.push(app);
      });
    }
    return removed;
  }

  #dir(app: string): string {
    return join(this.root, `${app}.git`);
  }

  /**
   * The incarnation a repository is marked with: undefined when there is no repository, `''`
   * for one made before repositories were marked (taken as the current app's).
   */
  async #incarnation(dir: string): Promise<{ value: string } | undefined> {
    const exists = await stat(join(dir, 'HEAD')).then(
      () => true,
      () => false,
    );
    if (!exists) return undefined;
    try {
      const { stdout } = await run('git', ['-C', dir, 'config', '--get', INCARNATION]);
      return { value: stdout.trim() };
    } catch (err) {
      // `git config --get` exits 1 when the key is not set.
      if ((err as { code?: unknown }).code === 1) return { value: '' };
      throw err;
    }
  }

  /** Moves a repository aside at once (nothing can open half of it), then deletes it. */
  async #discard(app: string, dir: string): Promise<void> {
    const trash = join(this.root, `.trash-${app}-${randomBytes(4).toString('hex')}`);
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
