import type { Build } from './build.js';
import type { Deployment } from './deployment.js';
import type { Release } from './release.js';

/** What each hook is given. */
export interface HookContexts {
  /** Before a build runs. A veto fails the build. */
  'pre-build': { readonly app: string; readonly build: Build; readonly user: string | undefined };
  /** After a build succeeded, before its release is made. A veto fails the build: no release. */
  'post-build': { readonly app: string; readonly build: Build; readonly user: string | undefined };
  /** Before a release goes live (after its release phase). A veto stops the deploy; no job changed. */
  'pre-release': {
    readonly app: string;
    readonly release: Release;
    readonly from: string | undefined;
  };
  /**
   * After a deploy went live and the old jobs are gone. A veto rolls the app back to the
   * release before (a new deploy of it) and the deployment is reported failed.
   */
  'post-deploy': {
    readonly app: string;
    readonly release: Release;
    readonly deployment: Deployment;
  };
}

/** A hook's name. */
export type HookName = keyof HookContexts;

/** What a hook answers: nothing to let the step go on, `{ veto }` to stop it with a reason. */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a hook that returns nothing lets the step go on
export type HookResult = void | undefined | { readonly veto: string };

/** A hook function. A hook that throws vetoes with its error's message. */
export type Hook<N extends HookName> = (
  context: HookContexts[N],
  signal: AbortSignal,
) => HookResult | Promise<HookResult>;

/**
 * Plugins' hooks, run in the order they were added, as Dokku's plugin triggers: the first veto
 * stops the step with `FLOTILLA_CONTROLLER_VETOED`.
 */
export interface Hooks {
  /** Adds a hook; the returned function removes it. */
  add<N extends HookName>(name: N, hook: Hook<N>): () => void;
}
