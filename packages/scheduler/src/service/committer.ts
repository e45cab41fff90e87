import {
  type ClusterKeys,
  type HostAlloc,
  type JobRecord,
  jobRecordWriter,
} from '@flotilla/cluster';
import type { Clock } from '@flotilla/core';
import type { Compare, Store, TxnOp } from '@flotilla/store';
import type { Planner } from '../planner.js';
import type { Plan, PlannedStart, PlannedStop } from '../types.js';
import type { ClusterMirror } from './mirror.js';

/**
 * The fewest ops left in a transaction for another host's starts to go in: the unit's compares
 * and allocation, and a few jobs.
 */
const MIN_START_ROOM = 8;

/** A unit of commit: one transaction's worth of work on one host or one job. */
interface Unit {
  readonly compare: Compare[];
  /** How many ops {@link takeOps} gives. */
  readonly opCount: number;
  /**
   * Its ops, to send. A unit of starts gives the ones it built and lets them go, so that their
   * keys and values live no longer than the store takes to encode them (held for the round
   * trip, a bulk commit's values were promoted and copied by the collector); called again (a
   * retry on its own after its transaction failed), it builds them anew from its records.
   */
  takeOps(): TxnOp[];
  readonly bytes: number;
  /** Applies the unit's effect locally after a successful commit. */
  readonly apply: (revision: number) => void;
  /** Marks what it planned for planning again after a conflict. */
  readonly retry: () => void;
  readonly starts: number;
  readonly stops: number;
}

/** What committing one plan did. */
export interface CommitResult {
  started: number;
  stopped: number;
  conflicts: number;
  transactions: number;
  /** Whether something was left for the next cycle (a conflict). */
  again: boolean;
}

const size = (ops: readonly TxnOp[]): number =>
  ops.reduce(
    (a, o) =>
      a + o.op.length + ('key' in o ? o.key.length : 0) + (o.op === 'put' ? o.value.length : 0),
    0,
  ) * 2;

/**
 * Turns a plan into store transactions and commits them: stops per job (compare the job's and
 * its status' revisions), starts per host (compare the host's allocation, record, operator
 * settings and heartbeat), packed into transactions within the store's limits, several in
 * flight. Every transaction also compares the scheduler epoch, so a scheduler acting on an old
 * member list commits nothing. A transaction that fails is split into its units; only the
 * units that conflict are planned again.
 */
export class Committer {
  readonly #store: Store;
  readonly #keys: ClusterKeys;
  readonly #mirror: ClusterMirror;
  readonly #planner: Planner;
  readonly #clock: Clock;
  readonly #id: string;
  readonly #concurrency: number;
  readonly #held: (jobId: string) => boolean;
  /** Aborts the transactions in flight (the scheduler closing): none holds close() up. */
  readonly #signal: AbortSignal;
  #seq = 0;
  readonly #tag: string;

  constructor(options: {
    store: Store;
    keys: ClusterKeys;
    mirror: ClusterMirror;
    planner: Planner;
    clock: Clock;
    id: string;
    tag: string;
    concurrency: number;
    held: (jobId: string) => boolean;
    signal: AbortSignal;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#mirror = options.mirror;
    this.#planner = options.planner;
    this.#clock = options.clock;
    this.#id = options.id;
    this.#tag = options.tag;
    this.#concurrency = options.concurrency;
    this.#held = options.held;
    this.#signal = options.signal;
  }

  /**
   * Commits a plan under the epoch revision `epoch` (0: compare it absent) and this scheduler's
   * member key at revision `member` (a fence: see `Membership.barrier`). `sole`: this
   * scheduler is the epoch's only member, so no other can place anything without changing the
   * epoch first; the per-host allocation compares are then skipped.
   */
  async commit(plan: Plan, epoch: number, member: number, sole: boolean): Promise<CommitResult> {
    const result: CommitResult = {
      started: 0,
      stopped: 0,
      conflicts: 0,
      transactions: 0,
      again: false,
    };
    // Jobs of down hosts dropped by this plan free their numbers for its replacements.
    const dropped = new Set<string>();
    for (const s of plan.stop)
      if (s.reason === 'host-down' || s.reason === 'host-unknown') dropped.add(s.jobId);
    // Units are built as transactions are sent, not all up front: a plan of a quarter of a
    // million starts built at once kept every record, key and serialised value alive for the
    // whole commit, long enough to be promoted, and the old generation's collections then took
    // a third of the scheduler's time.
    const stops = this.#stopUnits(plan.stop);
    const starts = this.#startUnits(plan.start, sole, dropped);
    let failed = false;
    let stopAt = 0;
    let spare: Unit | undefined; // a unit that did not fit the previous transaction
    const limits = this.#store.limits;
    const maxOps = limits.maxTxnOps - 2; // compares of the epoch and the member key
    const maxBytes = Math.floor(limits.maxRequestBytes * 0.9);
    const nextBatch = (): Unit[] | undefined => {
      const batch: Unit[] = [];
      let ops = 0;
      let bytes = 0;
      for (;;) {
        let u = spare;
        spare = undefined;
        if (u === undefined && stopAt < stops.length) u = stops[stopAt++];
        else if (u === undefined) {
          // A host's starts are cut to the room left, the rest following in a unit of its
          // own: transactions go out full, whatever the number of starts per host.
          if (batch.length > 0 && maxOps - ops < MIN_START_ROOM) break;
          u = starts.next(batch.length > 0 ? maxOps - ops : maxOps);
        }
        if (u === undefined) break;
        const n = u.opCount + u.compare.length;
        if (batch.length > 0 && (ops + n > maxOps || bytes + u.bytes > maxBytes)) {
          spare = u;
          break;
        }
        batch.push(u);
        ops += n;
        bytes += u.bytes;
      }
      return batch.length > 0 ? batch : undefined;
    };

    const epochCompare: Compare = {
      key: this.#keys.schedulerEpoch,
      target: 'modRevision',
      op: '==',
      value: epoch,
    };
    const memberCompare: Compare = {
      key: this.#keys.scheduler(this.#id),
      target: 'modRevision',
      op: '==',
      value: member,
    };
    const run = async (b: Unit[]): Promise<void> => {
      const res = await this.#store.txn(
        {
          compare: [epochCompare, memberCompare, ...b.flatMap((u) => u.compare)],
          success: b.flatMap((u) => u.takeOps()),
        },
        { signal: this.#signal },
      );
      result.transactions++;
      if (res.succeeded) {
        this.#mirror.ownCommit(res.revision);
        for (const u of b) {
          u.apply(res.revision);
          result.started += u.starts;
          result.stopped += u.stops;
        }
        return;
      }
      if (b.length === 1) {
        // This host or job (or the epoch) changed under us: plan it again once the watch has
        // caught up.
        const u = b[0] as Unit;
        result.conflicts += u.starts + u.stops;
        u.retry();
        result.again = true;
        return;
      }
      // Find the units that conflict: commit each on its own.
      for (const u of b) await run([u]);
    };
    // When one transaction fails, the others in flight are still waited for (and applied):
    // planning again before they land would place their jobs a second time.
    // After a failure no more units are built: the caller plans the whole plan again.
    // A worker that finds nothing to send while a host's next unit waits on one in flight
    // waits for it, so that the host's remaining starts go in this commit, not the next cycle.
    const settled = await Promise.allSettled(
      Array.from({ length: this.#concurrency }, async () => {
        while (!failed) {
          const b = nextBatch();
          if (b === undefined) {
            if (starts.waiting === 0) return;
            await starts.changed();
            continue;
          }
          await run(b).catch((err: unknown) => {
            failed = true;
            starts.wake();
            throw err;
          });
        }
      }),
    );
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    return result;
  }

  #stopUnits(stops: readonly PlannedStop[]): Unit[] {
    const units: Unit[] = [];
    for (const stop of stops) {
      const known = this.#mirror.jobs.get(stop.jobId);
      if (known === undefined) continue;
      const { record, rev } = known;
      const key = this.#keys.job(record.hostId, record.id);
      const retry = (): void => this.#planner.invalidate(record.app, record.release, record.type);
      if (stop.reason === 'host-down' || stop.reason === 'host-unknown') {
        // Nobody is left to stop a job on a down host: drop its records.
        const statusKey = this.#keys.jobStatus(record.hostId, record.id);
        const ops: TxnOp[] = [
          { op: 'delete', key },
          { op: 'delete', key: statusKey },
        ];
        units.push({
          compare: [
            { key, target: 'modRevision', op: '==', value: rev },
            { key: statusKey, target: 'modRevision', op: '==', value: known.statusRev },
          ],
          opCount: ops.length,
          takeOps: () => ops,
          bytes: size(ops),
          starts: 0,
          stops: 1,
          apply: () => this.#mirror.deleted(record.id),
          retry,
        });
        continue;
      }
      const next: JobRecord = { ...record, desired: 'stop', stopReason: stop.reason };
      const ops: TxnOp[] = [{ op: 'put', key, value: JSON.stringify(next) }];
      units.push({
        compare: [{ key, target: 'modRevision', op: '==', value: rev }],
        opCount: ops.length,
        takeOps: () => ops,
        bytes: size(ops),
        starts: 0,
        stops: 1,
        apply: (revision) => this.#mirror.committed(next, revision),
        retry,
      });
    }
    return units;
  }

  #startUnits(
    starts: readonly PlannedStart[],
    sole: boolean,
    dropped: ReadonlySet<string>,
  ): StartUnits {
    const byHost = new Map<string, PlannedStart[]>();
    for (const s of starts) {
      let list = byHost.get(s.hostId);
      if (list === undefined) byHost.set(s.hostId, (list = []));
      list.push(s);
    }
    // Each unit: compare the host's record (and allocation); put the jobs and the allocation.
    // A unit takes as many of a host's starts as the transaction it goes into has room for
    // (`room`: ops). Whole hosts per unit packed badly: a host given 70 jobs filled a
    // transaction of 128 ops with 73 and the next host's 70 went into another (at 1M jobs on
    // 10k hosts, 77 jobs per transaction instead of 120). The rest of a host's starts goes in a
    // unit of its own once the one before has landed (its allocation counts on it): leaving it
    // to the next cycle cost a planning pass with nothing in flight.
    const overhead = sole ? 2 : 3; // the compares and the allocation's put
    const now = this.#clock.now();
    // Every id of this commit shares its time part (ids stay unique by the sequence).
    const idMiddle = `.${now.toString(36)}.${this.#tag}`;
    // Per group (and size) of this commit: its index allocator and record writer.
    const groups = new Map<string, Map<string, Map<string, GroupCommit[]>>>();
    const groupOf = (s: PlannedStart): GroupCommit => {
      let releases = groups.get(s.app);
      if (releases === undefined) groups.set(s.app, (releases = new Map()));
      let types = releases.get(s.release);
      if (types === undefined) releases.set(s.release, (types = new Map()));
      let sized = types.get(s.type);
      if (sized === undefined) types.set(s.type, (sized = []));
      for (const g of sized) if (g.resources === s.resources) return g;
      // One allocator per group, whatever the sizes (a resize mid-commit is rare).
      const g: GroupCommit = {
        resources: s.resources,
        indexes: sized[0]?.indexes ?? this.#indexes(s.app, s.release, s.type, dropped),
        write: jobRecordWriter({
          app: s.app,
          release: s.release,
          type: s.type,
          resources: s.resources,
          desired: 'run',
          createdAt: now,
        }),
      };
      sized.push(g);
      return g;
    };
    const hosts = byHost.entries();
    // Hosts whose previous unit landed, with the starts still to send.
    const ready: [string, PlannedStart[]][] = [];
    let waiting = 0;
    let wakers: (() => void)[] = [];
    const wake = (): void => {
      const w = wakers;
      wakers = [];
      for (const f of w) f();
    };
    const invalidate = (list: readonly { app: string; release: string; type: string }[]): void => {
      for (const s of list) this.#planner.invalidate(s.app, s.release, s.type);
    };
    const build = (hostId: string, list: PlannedStart[], room: number): Unit => {
      const perUnit = Math.max(1, room - overhead);
      const allocKey = this.#keys.alloc(hostId);
      // The host's prefix, validated once: the ids appended are this scheduler's own
      // (`#jobId`: a validated process type, then only [a-z0-9.]), valid by construction.
      const hostJobs = this.#keys.jobsOf(hostId);
      const chunk = list.length > perUnit ? list.slice(0, perUnit) : list;
      const rest = chunk.length < list.length ? list.slice(perUnit) : undefined;
      if (rest !== undefined) waiting++;
      // One pass per job: its record, key and serialised value. A host's starts mix many
      // groups (spread interleaves them), so each job finds its group's index allocator and
      // record writer through maps keyed by the formation's own strings (hashed once).
      const records: JobRecord[] = [];
      const ops: TxnOp[] = [];
      let cpu = 0;
      let memory = 0;
      let chars = 0;
      let last: PlannedStart | undefined;
      let group: GroupCommit | undefined;
      for (const s of chunk) {
        if (
          group === undefined ||
          last === undefined ||
          s.app !== last.app ||
          s.release !== last.release ||
          s.type !== last.type ||
          s.resources !== last.resources
        )
          group = groupOf(s);
        last = s;
        const record: JobRecord = {
          id: this.#jobId(s.type, idMiddle),
          app: s.app,
          release: s.release,
          type: s.type,
          hostId,
          index: group.indexes.next(),
          resources: s.resources,
          desired: 'run',
          createdAt: now,
        };
        const key = hostJobs + record.id;
        const value = group.write(record.id, hostId, record.index);
        records.push(record);
        ops.push({ op: 'put', key, value });
        cpu += s.resources.cpu;
        memory += s.resources.memory;
        chars += 3 + key.length + value.length; // UTF-16 units, as size() counts a put
      }
      const usage = this.#mirror.usage.get(hostId) ?? { jobs: 0, cpu: 0, memory: 0 };
      const hostAlloc: HostAlloc = {
        jobs: usage.jobs + records.length,
        cpu: usage.cpu + cpu,
        memory: usage.memory + memory,
        by: this.#id,
      };
      const allocValue = JSON.stringify(hostAlloc);
      ops.push({ op: 'put', key: allocKey, value: allocValue });
      chars += 3 + allocKey.length + allocValue.length;
      // The host's capacity is as the plan saw it; and, when other schedulers may place
      // here too, so is its allocation (Omega's per-machine check). A drain or a lost heartbeat
      // racing this commit is not compared: the next plan moves what landed there.
      const compare: Compare[] = [
        {
          key: this.#keys.host(hostId),
          target: 'modRevision',
          op: '==',
          value: this.#mirror.hosts.get(hostId)?.rev ?? 0,
        },
      ];
      if (!sole)
        compare.push({
          key: allocKey,
          target: 'modRevision',
          op: '==',
          value: this.#mirror.allocRev.get(hostId) ?? 0,
        });
      let built: TxnOp[] | undefined = ops;
      return {
        compare,
        opCount: ops.length,
        takeOps: () => {
          const o = built;
          if (o !== undefined) {
            built = undefined;
            return o;
          }
          // As written the first time: the writer's JSON is JSON.stringify of the record.
          const again: TxnOp[] = records.map((r) => ({
            op: 'put',
            key: hostJobs + r.id,
            value: JSON.stringify(r),
          }));
          again.push({ op: 'put', key: allocKey, value: allocValue });
          return again;
        },
        bytes: chars * 2,
        starts: records.length,
        stops: 0,
        apply: (revision) => {
          if ((this.#mirror.allocRev.get(hostId) ?? 0) < revision)
            this.#mirror.allocRev.set(hostId, revision);
          this.#mirror.committedStarts(records, revision);
          if (rest !== undefined) {
            waiting--;
            ready.push([hostId, rest]);
            wake();
          }
        },
        retry: () => {
          invalidate(records);
          if (rest !== undefined) {
            // Planned again with the rest of the host's starts.
            invalidate(rest);
            waiting--;
            wake();
          }
        },
      };
    };
    return {
      next: (room) => {
        const r = ready.pop();
        if (r !== undefined) return build(r[0], r[1], room);
        const next = hosts.next();
        return next.done === true ? undefined : build(next.value[0], next.value[1], room);
      },
      get waiting() {
        return waiting;
      },
      changed: () => new Promise<void>((resolve) => wakers.push(resolve)),
      wake,
    };
  }

  /**
   * The indexes in use in a group: running (or held) jobs the scheduler still wants, but for
   * those of down hosts this commit drops (`dropped`).
   */
  #indexes(
    app: string,
    release: string,
    type: string,
    dropped: ReadonlySet<string>,
  ): IndexAllocator {
    const used = new Set<number>();
    // The planner holds every job that may still use an index (down ones, and crashed ones
    // out of backoff, are dropped from it); the mirror has each one's current state.
    for (const held of this.#planner.jobsOf(app, release, type)) {
      const j = this.#mirror.jobs.get(held.id);
      if (j === undefined) continue;
      if (j.record.desired !== 'run' || j.state === 'down' || dropped.has(j.id)) continue;
      if (j.state === 'crashed' && !this.#held(j.id)) continue; // released: being replaced
      used.add(j.record.index);
    }
    return new IndexAllocator(used);
  }

  /**
   * A job id unique across schedulers: type, time, a per-scheduler random tag, a sequence.
   * `middle` is `.<time>.<tag>` of the commit.
   */
  #jobId(type: string, middle: string): string {
    this.#seq = (this.#seq + 1) % 0x1000000;
    // join() makes a flat string; a template makes a rope that the first map lookup flattens
    // (and keeps), a fifth of the cost of filing a new job in the scheduler's two maps.
    return [type.length > 100 ? type.slice(0, 100) : type, middle, this.#seq.toString(36)].join('');
  }
}

/**
 * The start units of one commit, built as they are sent: a host's first unit, or the next unit
 * of a host whose previous one has landed.
 */
interface StartUnits {
  /**
   * The next unit ready to send, of at most `room` ops (at least one start), or undefined when
   * none is (now).
   */
  next(room: number): Unit | undefined;
  /** Units in flight after which their host has more starts to send. */
  readonly waiting: number;
  /** Resolves when a unit may have become ready, or `waiting` has changed. */
  changed(): Promise<void>;
  /** Wakes every `changed()` (a commit failing: its workers stop). */
  wake(): void;
}

/** What a commit keeps per group (and size) of its starts. */
interface GroupCommit {
  readonly resources: PlannedStart['resources'];
  readonly indexes: IndexAllocator;
  readonly write: (id: string, hostId: string, index: number) => string;
}

/** Hands out the lowest free indexes of a group, from 1 (`web.1`, `web.2`...). */
class IndexAllocator {
  readonly #used: Set<number>;
  #cursor = 1;

  constructor(used: Set<number>) {
    this.#used = used;
  }

  next(): number {
    // The cursor only moves up: what it hands out is never looked for again, so it is not
    // added to the set (a set grown by a hundred entries per group was a twentieth of a bulk
    // commit's allocation).
    while (this.#used.has(this.#cursor)) this.#cursor++;
    return this.#cursor++;
  }
}
