import { execFile } from 'node:child_process';
import { chmod, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PaasError, PaasErrorCodes } from '../../errors.js';

const run = promisify(execFile);
const DEFAULT_MAX_PUSH_BYTES = 512 * 1024 * 1024;

/** The bare repositories of the apps, one per app under `root` (`<root>/<app>.git`). */
export class GitRepos {
  readonly root: string;
  readonly #hookScript: string;
  readonly #creating = new Map<string, Promise<string>>();
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

  /** The repository of `app`, created (bare, with the deploy hook) on first use. */
  ensure(app: string): Promise<string> {
    let p = this.#creating.get(app);
    if (p === undefined) {
      p = this.#ensure(app).finally(() => this.#creating.delete(app));
      this.#creating.set(app, p);
    }
    return p;
  }

  async #ensure(app: string): Promise<string> {
    const dir = join(this.root, `${app}.git`);
    const exists = await stat(join(dir, 'HEAD')).then(
      () => true,
      () => false,
    );
    if (!exists) {
      // Made aside and renamed into place, so a crash never leaves half a repository.
      const tmp = join(this.root, `.tmp-${app}-${process.pid}-${Date.now()}`);
      try {
        await mkdir(this.root, { recursive: true });
        await run('git', ['init', '--bare', '--quiet', '--initial-branch=main', tmp]);
        await run('git', ['-C', tmp, 'config', 'http.receivepack', 'true']);
        await run('git', ['-C', tmp, 'config', 'receive.denyDeletes', 'false']);
        await this.#configure(tmp);
        await rename(tmp, dir);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw new PaasError(PaasErrorCodes.GIT, `cannot create the repository of ${app}`, {
          status: 500,
          cause: err,
        });
      }
    } else {
      // The hook names this server's Node and build: rewrite it, in case they moved; and the
      // push size limit, in case it changed (or the repository predates it).
      await this.#configure(dir);
    }
    return dir;
  }

  async #configure(dir: string): Promise<void> {
    await run('git', ['-C', dir, 'config', 'receive.maxInputSize', String(this.#maxPushBytes)]);
    await this.#writeHook(dir);
  }

  async #writeHook(dir: string): Promise<void> {
    const hook = join(dir, 'hooks', 'pre-receive');
    await mkdir(join(dir, 'hooks'), { recursive: true });
    await writeFile(hook + '.tmp', this.#hookScript);
    await chmod(hook + '.tmp', 0o755);
    await rename(hook + '.tmp', hook);
  }

  /** Deletes the repository of `app` (when the app is destroyed). */
  async remove(app: string): Promise<void> {
    await rm(join(this.root, `${app}.git`), { recursive: true, force: true });
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
