import type { Cluster } from './cluster.js';
import type { HostSnapshot, JobSnapshot, PlannedStart, ProcessSpec } from '../types.js';

/** A job the planner knows, with where its resources are held. */
export interface JobEntry {
  job: JobSnapshot;
  /** Host slot the job's resources are held on, or -1. */
  held: number;
  group: Group;
  /** Position in `group.jobs`. */
  gi: number;
  /** Position in its host's list of jobs. */
  hi: number;
}

/** The jobs and spec of one (app, release, process type). */
export interface Group {
  readonly key: string;
  readonly app: string;
  readonly release: string;
  readonly type: string;
  spec: ProcessSpec | undefined;
  signature: string;
  readonly jobs: JobEntry[];
  /** Set once the planner forgot the group (no spec, no jobs). */
  gone: boolean;
  /**
   * Jobs on draining hosts are kept until replacements are up: set while some are, so that a
   * job of the group coming up (or going down) plans the group again.
   */
  awaitingUp: boolean;
}

/** Jobs of a group to place. */
export interface Need {
  readonly group: Group;
  readonly spec: ProcessSpec;
  readonly count: number;
  /** Jobs of the group per host slot (kept ones; placements add to it). */
  readonly perHost: Map<number, number>;
  /** For omni groups: the host slot they must go on. */
  readonly host?: number;
}

/** A placement strategy on the planner's indexes. */
export interface Placer {
  /**
   * Places up to `need.count` jobs of each need, in the order of `needs` or one of its own,
   * appending to `out` and `held`. Calls `done` once per need with how many it placed, as soon
   * as that need is settled (so that {@link Placer.rejections} is about that need).
   */
  placeAll(
    needs: readonly Need[],
    out: PlannedStart[],
    held: number[],
    done: (need: Need, placed: number) => void,
  ): void;
  /** A host's usage changed; `grew` when it went up (spread sees growth lazily). */
  touch(h: number, grew: boolean): void;
  /** Hosts changed: drop indexes. */
  reset(): void;
  rejections(): ReadonlyMap<string, number>;
}

/** The start a placement on host slot `h` becomes. */
export function startOf(cluster: Cluster, need: Need, h: number): PlannedStart {
  return {
    app: need.group.app,
    release: need.group.release,
    type: need.group.type,
    hostId: (cluster.hosts[h] as HostSnapshot).id,
    resources: need.spec.resources,
  };
}

export const NO_REJECTIONS: ReadonlyMap<string, number> = new Map();

/** `placeAll` for placers that place needs one after the other. */
export function placeInOrder(
  place: (need: Need, out: PlannedStart[], held: number[]) => number,
  needs: readonly Need[],
  out: PlannedStart[],
  held: number[],
  done: (need: Need, placed: number) => void,
): void {
  for (const need of needs) done(need, place(need, out, held));
}

/** Places an omni need: its host or nothing. */
export function placeOnHost(
  cluster: Cluster,
  need: Need,
  h: number,
  out: PlannedStart[],
  held: number[],
): number {
  const { cpu, memory } = need.spec.resources;
  let placed = 0;
  while (placed < need.count && cluster.fits(h, cpu, memory)) {
    cluster.add(h, cpu, memory);
    out.push(startOf(cluster, need, h));
    held.push(h);
    placed++;
  }
  need.perHost.set(h, (need.perHost.get(h) ?? 0) + placed);
  return placed;
}
