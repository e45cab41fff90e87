import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { Hook, HookContexts, HookName, Hooks } from '../hooks.js';

const NAMES: readonly HookName[] = ['pre-build', 'post-build', 'pre-release', 'post-deploy'];

/** The {@link Hooks} of a controller: run in order, the first veto (or throw) stops the step. */
export class HookRegistry implements Hooks {
  readonly #hooks = new Map<HookName, Hook<HookName>[]>();

  /** `timeoutMs`: how long one hook may take before its signal aborts and it vetoes. */
  constructor(readonly timeoutMs = 300_000) {}

  add<N extends HookName>(name: N, hook: Hook<N>): () => void {
    if (!NAMES.includes(name))
      throw new ControllerError(
        ControllerErrorCodes.INVALID_INPUT,
        `there is no hook ${JSON.stringify(String(name).slice(0, 40))}: use one of ${NAMES.join(', ')}`,
        { path: 'name' },
      );
    if (typeof hook !== 'function')
      throw new ControllerError(ControllerErrorCodes.INVALID_INPUT, 'a hook must be a function', {
        path: 'hook',
      });
    const list = this.#hooks.get(name) ?? [];
    list.push(hook as Hook<HookName>);
    this.#hooks.set(name, list);
    return () => {
      const l = this.#hooks.get(name);
      const i = l?.indexOf(hook as Hook<HookName>) ?? -1;
      if (l !== undefined && i >= 0) l.splice(i, 1);
    };
  }

  /** Runs the hooks of a step; throws `FLOTILLA_CONTROLLER_VETOED` at the first veto. */
  async run<N extends HookName>(
    name: N,
    context: HookContexts[N],
    signal: AbortSignal,
    app: string,
  ): Promise<void> {
    const hooks = [...(this.#hooks.get(name) ?? [])];
    for (const [i, hook] of hooks.entries()) {
      let reason: string | undefined;
      let cause: unknown;
      // Each hook gets the step's signal, aborted too when it has taken timeoutMs. One that has
      // not answered by then, or by the step's own abort (it ignores its signal), is not waited
      // for: it vetoes, or the step ends with its abort reason.
      const timeout = new AbortController();
      const timer = setTimeout(
        () =>
          timeout.abort(
            new ControllerError(
              ControllerErrorCodes.VETOED,
              `hook ${i + 1} of ${hooks.length} did not answer within ${this.timeoutMs} ms (hookTimeoutMs)`,
              { app, hook: name },
            ),
          ),
        this.timeoutMs,
      );
      const hookSignal = AbortSignal.any([signal, timeout.signal]);
      try {
        signal.throwIfAborted();
        const stopped = new Promise<never>((_, reject) =>
          hookSignal.addEventListener('abort', () => reject(hookSignal.reason), { once: true }),
        );
        const res = await Promise.race([(hook as Hook<N>)(context, hookSignal), stopped]);
        if (res !== undefined && res !== null && typeof res === 'object' && 'veto' in res)
          reason = String(res.veto).slice(0, 4096) || 'no reason given';
      } catch (err) {
        // The step itself was aborted (a cancelled build, a closing controller): that, not a veto.
        if (signal.aborted && err === signal.reason) throw err;
        reason = err instanceof Error ? err.message : String(err);
        cause = err;
      } finally {
        clearTimeout(timer);
      }
      if (reason !== undefined)
        throw new ControllerError(ControllerErrorCodes.VETOED, `${name} hook vetoed: ${reason}`, {
          app,
          hook: name,
          cause,
        });
    }
  }
}
