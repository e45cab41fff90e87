import { ControllerError, ControllerErrorCodes } from '../errors.js';
import type { Hook, HookContexts, HookName, Hooks } from '../hooks.js';

const NAMES: readonly HookName[] = ['pre-build', 'post-build', 'pre-release', 'post-deploy'];

/** The {@link Hooks} of a controller: run in order, the first veto (or throw) stops the step. */
export class HookRegistry implements Hooks {
  readonly #hooks = new Map<HookName, Hook<HookName>[]>();

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
    for (const hook of [...(this.#hooks.get(name) ?? [])]) {
      let reason: string | undefined;
      let cause: unknown;
      try {
        const res = await (hook as Hook<N>)(context, signal);
        if (res !== undefined && res !== null && typeof res === 'object' && 'veto' in res)
          reason = String(res.veto).slice(0, 4096) || 'no reason given';
      } catch (err) {
        reason = err instanceof Error ? err.message : String(err);
        cause = err;
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
