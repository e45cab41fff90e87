import type { HostSnapshot, Resources } from './types.js';

/** The job a plugin is asked about. */
export interface PlacementRequest {
  readonly app: string;
  readonly release: string;
  readonly type: string;
  readonly resources: Resources;
  readonly constraints: Readonly<Record<string, string>>;
}

/** A host as a plugin sees it, with what is already placed on it in this plan. */
export interface HostView {
  readonly host: HostSnapshot;
  /** Resources held on the host, including placements made earlier in this plan. */
  readonly used: Resources;
  /** Jobs of the same app, release and type on the host, including this plan's. */
  readonly sameGroup: number;
  /** The host's value of the spread tag (`zone`), or `''`. */
  readonly zone: string;
}

/**
 * A placement step: a filter, a scorer, or both (Kubernetes' scheduling framework, small).
 *
 * Built-in steps always run first: the host is up, matches the constraints and has room;
 * then the strategy's preference (spread: fewest of the group in the zone, then on the host,
 * then least loaded; binpack: first fit in best-fit order). Plugins then filter candidates out
 * and re-rank the rest: the host with the highest sum of plugin scores wins, the built-in
 * preference breaks ties.
 *
 * Plugins see every eligible host for every job, so a plan with plugins costs O(jobs x hosts);
 * without plugins the built-in steps run on indexes at about a million jobs per second.
 *
 * @example
 * ```ts
 * const avoidCanary: PlacementPlugin = {
 *   name: 'avoid-canary',
 *   filter: (view) => view.host.tags?.canary === 'true' ? 'canary hosts run no apps' : undefined,
 * };
 * const preferSsd: PlacementPlugin = {
 *   name: 'prefer-ssd',
 *   score: (view) => (view.host.tags?.disk === 'ssd' ? 10 : 0),
 * };
 * schedule(snapshot, { strategy: 'spread', plugins: [avoidCanary, preferSsd] });
 * ```
 */
export interface PlacementPlugin {
  /** A name for messages: an unplaced job says which filter rejected the most hosts. */
  readonly name: string;
  /** Returns a reason to reject the host, or `undefined` (or `true`) to accept it. */
  filter?(view: HostView, request: PlacementRequest): string | boolean | undefined;
  /** Returns a number; higher is better. */
  score?(view: HostView, request: PlacementRequest): number;
}
