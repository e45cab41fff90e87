import fc from 'fast-check';
import { assert, describe, expect, it } from 'vitest';
import type { PlacementPlugin } from './plugins.js';
import { Planner } from './planner.js';
import { schedule, type ScheduleOptions } from './schedule.js';
import { rng } from './internal/rng.js';
import type {
  ClusterSnapshot,
  Formation,
  HostSnapshot,
  JobSnapshot,
  Plan,
  PlannedStart,
  Resources,
} from './types.js';

const host = (
  id: string,
  zone: string,
  cpu = 4000,
  memory = 8192,
  extra: Partial<HostSnapshot> = {},
): HostSnapshot => ({
  id,
  tags: { zone, ...extra.tags },
  capacity: { cpu, memory },
  state: extra.state ?? 'up',
});

const formation = (app: string, release: string, processes: Formation['processes']): Formation => ({
  app,
  release,
  processes,
});

const small = { cpu: 100, memory: 128 };

let jobSeq = 0;
const job = (
  app: string,
  release: string,
  type: string,
  hostId: string,
  extra: Partial<JobSnapshot> = {},
): JobSnapshot => ({
  id: extra.id ?? `j${++jobSeq}`,
  app,
  release,
  type,
  hostId,
  resources: extra.resources ?? small,
  state: extra.state ?? 'up',
  ...(extra.createdAt === undefined ? {} : { createdAt: extra.createdAt }),
});

/** Jobs after a plan is carried out: starts become up jobs, stops are gone. */
function apply(snapshot: ClusterSnapshot, plan: Plan): ClusterSnapshot {
  const stopped = new Set(plan.stop.map((s) => s.jobId));
  const jobs = snapshot.jobs.filter((j) => !stopped.has(j.id));
  plan.start.forEach((s, i) =>
    jobs.push({ ...s, id: `new-${jobSeq}-${i}`, state: 'up', createdAt: 1e12 + i }),
  );
  jobSeq++;
  return { ...snapshot, jobs };
}

/** Resources held per host after the plan: never more than capacity. */
function checkCapacity(snapshot: ClusterSnapshot, plan: Plan): void {
  const used = new Map<string, { cpu: number; memory: number }>();
  const add = (hostId: string, r: { cpu: number; memory: number }): void => {
    const u = used.get(hostId) ?? { cpu: 0, memory: 0 };
    used.set(hostId, { cpu: u.cpu + r.cpu, memory: u.memory + r.memory });
  };
  for (const j of snapshot.jobs)
    if (!['down', 'crashed'].includes(j.state)) add(j.hostId, j.resources);
  for (const s of plan.start) add(s.hostId, s.resources);
  for (const h of snapshot.hosts) {
    const u = used.get(h.id);
    if (u === undefined) continue;
    // Existing jobs may already overcommit (an operator shrank a host); the plan adds nothing then.
    const before = snapshot.jobs.filter(
      (j) => j.hostId === h.id && !['down', 'crashed'].includes(j.state),
    );
    const already = before.reduce((a, j) => a + j.resources.cpu, 0) > h.capacity.cpu;
    if (!already) {
      expect(u.cpu, `cpu on ${h.id}`).toBeLessThanOrEqual(h.capacity.cpu);
      expect(u.memory, `memory on ${h.id}`).toBeLessThanOrEqual(h.capacity.memory);
    }
  }
}

const count = (plan: Plan, pred: (s: Plan['start'][number]) => boolean): number =>
  plan.start.filter(pred).length;
const perHost = (plan: Plan): Map<string, number> => {
  const m = new Map<string, number>();
  for (const s of plan.start) m.set(s.hostId, (m.get(s.hostId) ?? 0) + 1);
  return m;
};

const hostsUsed = (plan: Plan): number => new Set(plan.start.map((s) => s.hostId)).size;

/** The fewest hosts, largest first, whose capacity covers the demand, per dimension. */
function lowerBound(snap: ClusterSnapshot): number {
  const need = (key: 'cpu' | 'memory'): number => {
    let total = 0;
    for (const f of snap.formations)
      for (const p of Object.values(f.processes)) total += p.count * p.resources[key];
    const caps = snap.hosts.map((h) => h.capacity[key]).sort((a, b) => b - a);
    let n = 0;
    for (let sum = 0; sum < total && n < caps.length; n++) sum += caps[n] as number;
    return n;
  };
  return Math.max(need('cpu'), need('memory'));
}

/**
 * The reference for two dimensions: first fit over hosts largest first, jobs biggest first,
 * CPU-heavy and memory-heavy jobs alternating (shares of the cluster's total capacity).
 */
function firstFitDecreasing(snap: ClusterSnapshot): { hostsUsed: number; unplaced: number } {
  const cpu = snap.hosts.reduce((a, h) => a + h.capacity.cpu, 0);
  const memory = snap.hosts.reduce((a, h) => a + h.capacity.memory, 0);
  const size = (r: Resources): number => Math.max(r.cpu / cpu, r.memory / memory);
  const jobs = snap.formations.flatMap((f) =>
    Object.values(f.processes).flatMap((p) => Array<Resources>(p.count).fill(p.resources)),
  );
  const heavy = (r: Resources): boolean => r.cpu / cpu >= r.memory / memory;
  const kinds = [jobs.filter(heavy), jobs.filter((r) => !heavy(r))].map((k) =>
    k.sort((a, b) => size(b) - size(a)),
  );
  const free = snap.hosts
    .map((h) => ({ ...h.capacity, used: false }))
    .sort((a, b) => size(b) - size(a));
  let unplaced = 0;
  for (let i = 0; i < jobs.length; i++) {
    for (const kind of kinds) {
      const r = kind[i];
      if (r === undefined) continue;
      const f = free.find((h) => h.cpu >= r.cpu && h.memory >= r.memory);
      if (f === undefined) {
        unplaced++;
        continue;
      }
      f.cpu -= r.cpu;
      f.memory -= r.memory;
      f.used = true;
    }
  }
  return { hostsUsed: free.filter((h) => h.used).length, unplaced };
}

describe('reconcile', () => {
  it('starts what a formation declares and nothing once it runs', () => {
    const snap: ClusterSnapshot = {
      hosts: [host('h1', 'a'), host('h2', 'b')],
      jobs: [],
      formations: [
        formation('demo', 'v1', {
          web: { count: 3, resources: small },
          worker: { count: 1, resources: small },
        }),
      ],
    };
    const plan = schedule(snap);
    expect(count(plan, (s) => s.type === 'web')).toBe(3);
    expect(count(plan, (s) => s.type === 'worker')).toBe(1);
    expect(plan.stop).toEqual([]);
    expect(plan.unplaced).toEqual([]);
    const again = schedule(apply(snap, plan));
    expect(again).toEqual({ start: [], stop: [], unplaced: [] });
  });

  it('scales down newest first', () => {
    const jobs = [1, 2, 3, 4].map((n) =>
      job('demo', 'v1', 'web', 'h1', { id: `w${n}`, createdAt: n }),
    );
    const plan = schedule({
      hosts: [host('h1', 'a')],
      jobs,
      formations: [formation('demo', 'v1', { web: { count: 2, resources: small } })],
    });
    expect(plan.stop).toEqual([
      { jobId: 'w4', reason: 'scaled-down' },
      { jobId: 'w3', reason: 'scaled-down' },
    ]);
    expect(plan.start).toEqual([]);
  });

  it('reconciles each live release of an app on its own (a deploy in progress)', () => {
    const jobs = [
      job('demo', 'v1', 'web', 'h1'),
      job('demo', 'v1', 'web', 'h2'),
      job('demo', 'v1', 'web', 'h1'),
    ];
    const plan = schedule({
      hosts: [host('h1', 'a'), host('h2', 'b')],
      jobs,
      formations: [
        formation('demo', 'v1', { web: { count: 1, resources: small } }),
        formation('demo', 'v2', { web: { count: 2, resources: small } }),
      ],
    });
    expect(plan.stop.filter((s) => s.reason === 'scaled-down')).toHaveLength(2);
    expect(plan.start.every((s) => s.release === 'v2')).toBe(true);
    expect(plan.start).toHaveLength(2);
  });

  it('stops jobs of no formation, on unknown hosts, and on hosts that lost their tags', () => {
    const jobs = [
      job('gone', 'v1', 'web', 'h1', { id: 'orphan' }),
      job('demo', 'v1', 'web', 'nowhere', { id: 'lost' }),
      job('demo', 'v1', 'web', 'h1', { id: 'mismatch' }),
    ];
    const plan = schedule({
      hosts: [host('h1', 'a'), host('h2', 'b', 4000, 8192, { tags: { disk: 'ssd' } })],
      jobs,
      formations: [
        formation('demo', 'v1', {
          web: { count: 1, resources: small, constraints: { disk: 'ssd' } },
        }),
      ],
    });
    expect(new Map(plan.stop.map((s) => [s.jobId, s.reason]))).toEqual(
      new Map([
        ['orphan', 'no-formation'],
        ['lost', 'host-unknown'],
        ['mismatch', 'constraint-mismatch'],
      ]),
    );
    expect(plan.start.map((s) => s.hostId)).toEqual(['h2']);
  });

  it('replaces jobs of down and draining hosts elsewhere and places nothing new there', () => {
    const hosts = [
      host('up', 'a'),
      host('down', 'b', 4000, 8192, { state: 'down' }),
      host('drain', 'c', 4000, 8192, { state: 'draining' }),
    ];
    const jobs = [
      job('demo', 'v1', 'web', 'down', { id: 'd' }),
      job('demo', 'v1', 'web', 'drain', { id: 'r' }),
    ];
    const snap = {
      hosts,
      jobs,
      formations: [formation('demo', 'v1', { web: { count: 2, resources: small } })],
    };
    const plan = schedule(snap);
    // The lost job is gone; the draining one serves until its replacement is up.
    expect(new Map(plan.stop.map((s) => [s.jobId, s.reason]))).toEqual(
      new Map([['d', 'host-down']]),
    );
    expect(plan.start.map((s) => s.hostId)).toEqual(['up', 'up']);
    // With both replacements up, the draining job is stopped, and nothing new is placed.
    const next = schedule(apply(snap, plan));
    expect(next.stop).toEqual([{ jobId: 'r', reason: 'host-draining' }]);
    expect(next.start).toEqual([]);
  });

  it('a drain moves a sole job without a gap: stopped once its replacement is up, not before', () => {
    const hosts = [host('up', 'a'), host('drain', 'c', 4000, 8192, { state: 'draining' })];
    const formations = [formation('demo', 'v1', { web: { count: 1, resources: small } })];
    const old = job('demo', 'v1', 'web', 'drain', { id: 'old' });
    const first = schedule({ hosts, jobs: [old], formations });
    expect(first.stop).toEqual([]);
    expect(first.start.map((s) => s.hostId)).toEqual(['up']);
    const replacement = job('demo', 'v1', 'web', 'up', { id: 'new', state: 'starting' });
    expect(schedule({ hosts, jobs: [old, replacement], formations }).stop).toEqual([]);
    const upNow = { ...replacement, state: 'up' as const };
    expect(schedule({ hosts, jobs: [old, upNow], formations }).stop).toEqual([
      { jobId: 'old', reason: 'host-draining' },
    ]);
    // A job on the draining host that is not up yet serves no one: stopped at once.
    const starting = job('demo', 'v1', 'web', 'drain', { id: 'starting', state: 'starting' });
    expect(schedule({ hosts, jobs: [starting], formations }).stop).toEqual([
      { jobId: 'starting', reason: 'host-draining' },
    ]);
  });

  it('a drain with no room elsewhere leaves the job serving and reports its replacement unplaced', () => {
    const hosts = [
      host('full', 'a', 100, 128),
      host('drain', 'c', 4000, 8192, { state: 'draining' }),
    ];
    const plan = schedule({
      hosts,
      jobs: [
        job('demo', 'v1', 'web', 'full', { id: 'f' }),
        job('demo', 'v1', 'web', 'drain', { id: 'r' }),
      ],
      formations: [formation('demo', 'v1', { web: { count: 2, resources: small } })],
    });
    expect(plan.stop).toEqual([]);
    expect(plan.start).toEqual([]);
    expect(plan.unplaced).toEqual([
      expect.objectContaining({ app: 'demo', type: 'web', count: 1, reason: 'no-capacity' }),
    ]);
  });

  it('does not count crashed, down or stopping jobs, but stopping ones still hold resources', () => {
    const jobs = [
      job('demo', 'v1', 'web', 'h1', { state: 'crashed', resources: { cpu: 1000, memory: 1 } }),
      job('demo', 'v1', 'web', 'h1', { state: 'stopping', resources: { cpu: 3900, memory: 1 } }),
    ];
    const plan = schedule({
      hosts: [host('h1', 'a'), host('h2', 'a')],
      jobs,
      formations: [
        formation('demo', 'v1', { web: { count: 2, resources: { cpu: 200, memory: 1 } } }),
      ],
    });
    expect(plan.stop).toEqual([]);
    // h1 has 100 millicores free while the stopping job runs: both go to h2.
    expect(plan.start.map((s) => s.hostId)).toEqual(['h2', 'h2']);
  });

  it('runs omni types on every eligible host, including new ones, and trims extras', () => {
    const hosts = [
      host('h1', 'a'),
      host('h2', 'b'),
      host('h3', 'c', 4000, 8192, { tags: { role: 'edge' } }),
    ];
    const jobs = [
      job('router', 'v1', 'proxy', 'h1', { id: 'p1', createdAt: 1 }),
      job('router', 'v1', 'proxy', 'h1', { id: 'p2', createdAt: 2 }),
    ];
    const plan = schedule({
      hosts,
      jobs,
      formations: [
        formation('router', 'v1', { proxy: { count: 1, resources: small, omni: true } }),
      ],
    });
    expect(plan.stop).toEqual([{ jobId: 'p2', reason: 'scaled-down' }]);
    expect(plan.start.map((s) => s.hostId).sort()).toEqual(['h2', 'h3']);
    const edgeOnly = schedule({
      hosts,
      jobs: [],
      formations: [
        formation('router', 'v1', {
          proxy: { count: 2, resources: small, omni: true, constraints: { role: 'edge' } },
        }),
      ],
    });
    expect(edgeOnly.start.map((s) => s.hostId)).toEqual(['h3', 'h3']);
  });
});

describe('placement rules', () => {
  it('never puts more on a host than its capacity, and says what did not fit', () => {
    const plan = schedule({
      hosts: [host('h1', 'a', 1000, 1024), host('h2', 'b', 1000, 1024)],
      jobs: [],
      formations: [
        formation('demo', 'v1', { web: { count: 5, resources: { cpu: 400, memory: 100 } } }),
      ],
    });
    expect(plan.start).toHaveLength(4);
    expect(plan.unplaced).toEqual([
      expect.objectContaining({
        app: 'demo',
        release: 'v1',
        type: 'web',
        count: 1,
        reason: 'no-capacity',
      }),
    ]);
    expect(plan.unplaced[0]?.message).toMatch(/400 millicores and 100 MiB.*200 millicores/);
  });

  it('places constrained types only on hosts with every tag, and says when there is none', () => {
    const hosts = [host('plain', 'a'), host('ssd', 'b', 4000, 8192, { tags: { disk: 'ssd' } })];
    const plan = schedule({
      hosts,
      jobs: [],
      formations: [
        formation('db', 'v1', {
          main: { count: 2, resources: small, constraints: { disk: 'ssd' } },
        }),
        formation('ml', 'v1', {
          train: { count: 1, resources: small, constraints: { gpu: 'true' } },
        }),
      ],
    });
    expect(plan.start.filter((s) => s.app === 'db').map((s) => s.hostId)).toEqual(['ssd', 'ssd']);
    expect(plan.unplaced).toEqual([
      expect.objectContaining({ app: 'ml', reason: 'no-matching-host', count: 1 }),
    ]);
    expect(plan.unplaced[0]?.message).toContain('"gpu":"true"');
    expect(plan.unplaced[0]?.message).toContain('tag a host');
  });

  it('says to start a host that has it when a constraint names a tag host agents set (flotilla.*)', () => {
    const plan = schedule({
      hosts: [host('plain', 'a')],
      jobs: [],
      formations: [
        formation('img', 'v1', {
          web: { count: 1, resources: small, constraints: { 'flotilla.artifact.image': 'true' } },
        }),
      ],
    });
    expect(plan.unplaced).toEqual([expect.objectContaining({ reason: 'no-matching-host' })]);
    expect(plan.unplaced[0]?.message).toMatch(
      /host agents set flotilla\.artifact\.image from what their driver runs; start a host that has it/,
    );
    expect(plan.unplaced[0]?.message).not.toContain('tag a host');
  });

  it('spread: one job per host while there are hosts, zones balanced within one', () => {
    const hosts = Array.from({ length: 12 }, (_, i) =>
      host(`h${i}`, ['a', 'b', 'c'][i % 3] as string),
    );
    const plan = schedule({
      hosts,
      jobs: [],
      formations: [formation('demo', 'v1', { web: { count: 10, resources: small } })],
    });
    expect([...perHost(plan).values()].every((n) => n === 1)).toBe(true);
    const zones = new Map<string, number>();
    for (const s of plan.start) {
      const z = hosts.find((h) => h.id === s.hostId)?.tags?.zone as string;
      zones.set(z, (zones.get(z) ?? 0) + 1);
    }
    expect(Math.max(...zones.values()) - Math.min(...zones.values())).toBeLessThanOrEqual(1);
    // With more jobs than hosts, every host gets two before any gets three.
    const many = schedule({
      hosts,
      jobs: [],
      formations: [formation('demo', 'v1', { web: { count: 30, resources: small } })],
    });
    const counts = [...perHost(many).values()];
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  });

  it('spread: counts existing jobs of the group when balancing zones', () => {
    const hosts = [host('a1', 'a'), host('a2', 'a'), host('b1', 'b'), host('b2', 'b')];
    const jobs = [job('demo', 'v1', 'web', 'a1'), job('demo', 'v1', 'web', 'a2')];
    const plan = schedule({
      hosts,
      jobs,
      formations: [formation('demo', 'v1', { web: { count: 4, resources: small } })],
    });
    expect(plan.start.map((s) => s.hostId).sort()).toEqual(['b1', 'b2']);
  });

  it('spread: prefers the least loaded host', () => {
    const hosts = [host('busy', 'a'), host('idle', 'a')];
    const jobs = [job('other', 'v1', 'web', 'busy', { resources: { cpu: 3000, memory: 100 } })];
    const plan = schedule({
      hosts,
      jobs,
      formations: [
        formation('other', 'v1', { web: { count: 1, resources: { cpu: 3000, memory: 100 } } }),
        formation('demo', 'v1', { web: { count: 1, resources: small } }),
      ],
    });
    expect(plan.start).toEqual([expect.objectContaining({ app: 'demo', hostId: 'idle' })]);
  });

  it('binpack: fills as few hosts as possible, biggest jobs first, used hosts first', () => {
    const hosts = Array.from({ length: 6 }, (_, i) => host(`h${i}`, 'a', 1000, 1000));
    const plan = schedule(
      {
        hosts,
        jobs: [job('old', 'v1', 'web', 'h5', { resources: { cpu: 500, memory: 500 } })],
        formations: [
          formation('old', 'v1', { web: { count: 1, resources: { cpu: 500, memory: 500 } } }),
          formation('demo', 'v1', {
            big: { count: 2, resources: { cpu: 600, memory: 600 } },
            small: { count: 4, resources: { cpu: 200, memory: 200 } },
          }),
        ],
      },
      { strategy: 'binpack' },
    );
    expect(plan.unplaced).toEqual([]);
    // 500 + 2x600 + 4x200 = 2500 on hosts of 1000: three hosts, and h5 (in use) is one of them.
    const used = new Set(plan.start.map((s) => s.hostId));
    used.add('h5');
    expect(used.size).toBe(3);
  });

  it('binpack: mixes CPU-heavy and memory-heavy jobs on a host, no dimension stranded', () => {
    // 8 x 1200 millicores / 256 MiB and 8 x 100 millicores / 2 GiB on hosts of 4000 / 8192:
    // 10,400 millicores and 18,432 MiB, three hosts at least. Placing the memory-heavy type first
    // and alone fills two hosts' memory and strands their CPU: five hosts.
    const snap: ClusterSnapshot = {
      hosts: Array.from({ length: 6 }, (_, i) => host(`h${i}`, 'a', 4000, 8192)),
      jobs: [],
      formations: [
        formation('api', 'v1', { web: { count: 8, resources: { cpu: 1200, memory: 256 } } }),
        formation('cache', 'v1', { redis: { count: 8, resources: { cpu: 100, memory: 2048 } } }),
      ],
    };
    const plan = schedule(snap, { strategy: 'binpack' });
    expect(plan.unplaced).toEqual([]);
    checkCapacity(snap, plan);
    expect(hostsUsed(plan)).toBe(3);
    expect(hostsUsed(plan)).toBeLessThanOrEqual(firstFitDecreasing(snap).hostsUsed);
  });

  it('binpack: on a mixed workload, no more hosts than first-fit decreasing with shapes alternating', () => {
    // Groups of 1 to 40 jobs, CPU-heavy or memory-heavy, sizes drawn apart, on hosts of four sizes.
    const next = rng(7);
    const between = (lo: number, hi: number, step: number): number =>
      lo + step * Math.floor(next() * ((hi - lo) / step + 1));
    const formations = Array.from({ length: 60 }, (_, i) =>
      formation(`app${i}`, 'v1', {
        main: {
          count: 1 + Math.floor(next() * 40),
          resources:
            next() < 0.5
              ? { cpu: between(200, 1000, 50), memory: between(64, 512, 64) }
              : { cpu: between(50, 250, 50), memory: between(1024, 4096, 256) },
        },
      }),
    );
    const snap: ClusterSnapshot = {
      hosts: Array.from({ length: 80 }, (_, i) =>
        host(`h${i}`, 'a', 8000 * (1 + (i % 4)), 32768 * (1 + (i % 4))),
      ),
      jobs: [],
      formations,
    };
    const plan = schedule(snap, { strategy: 'binpack' });
    const ffd = firstFitDecreasing(snap);
    expect(ffd.unplaced).toBe(0);
    expect(plan.unplaced).toEqual([]);
    checkCapacity(snap, plan);
    expect(hostsUsed(plan)).toBeLessThanOrEqual(ffd.hostsUsed);
    expect(hostsUsed(plan) / lowerBound(snap)).toBeLessThanOrEqual(1.05);
  });

  it('binpack: omni types take their host before others fill it', () => {
    const plan = schedule(
      {
        hosts: [host('h1', 'a', 1000, 1000)],
        jobs: [],
        formations: [
          formation('big', 'v1', { web: { count: 1, resources: { cpu: 900, memory: 900 } } }),
          formation('agent', 'v1', {
            logs: { count: 1, resources: { cpu: 200, memory: 200 }, omni: true },
          }),
        ],
      },
      { strategy: 'binpack' },
    );
    expect(plan.start.map((s) => s.app)).toEqual(['agent']);
    expect(plan.unplaced).toEqual([expect.objectContaining({ app: 'big', reason: 'no-capacity' })]);
  });

  it('is deterministic for a seed', () => {
    const hosts = Array.from({ length: 20 }, (_, i) => host(`h${i}`, ['a', 'b'][i % 2] as string));
    const snap = {
      hosts,
      jobs: [],
      formations: [formation('demo', 'v1', { web: { count: 7, resources: small } })],
    };
    expect(schedule(snap, { seed: 7 })).toEqual(schedule(snap, { seed: 7 }));
    const placements = new Set(
      [1, 2, 3, 4, 5].map((seed) =>
        JSON.stringify(
          schedule(snap, { seed })
            .start.map((s) => s.hostId)
            .sort(),
        ),
      ),
    );
    expect(placements.size).toBeGreaterThan(1);
  });
});

describe('plugins', () => {
  const hosts = [
    host('canary', 'a', 4000, 8192, { tags: { canary: 'true' } }),
    host('hdd', 'b'),
    host('ssd', 'c', 4000, 8192, { tags: { disk: 'ssd' } }),
  ];
  const snap = {
    hosts,
    jobs: [],
    formations: [formation('demo', 'v1', { web: { count: 2, resources: small } })],
  };
  const avoidCanary: PlacementPlugin = {
    name: 'avoid-canary',
    filter: (view) => (view.host.tags?.canary === 'true' ? 'canary' : undefined),
  };
  const preferSsd: PlacementPlugin = {
    name: 'prefer-ssd',
    score: (view) => (view.host.tags?.disk === 'ssd' ? 10 : 0),
  };

  it('filters hosts out and re-ranks the rest', () => {
    const filtered = schedule(snap, { plugins: [avoidCanary] });
    expect(filtered.start.map((s) => s.hostId).sort()).toEqual(['hdd', 'ssd']);
    const scored = schedule(snap, { plugins: [avoidCanary, preferSsd] });
    expect(scored.start.map((s) => s.hostId)).toEqual(['ssd', 'ssd']);
  });

  it('says which plugin rejected hosts when nothing fits', () => {
    const plan = schedule(snap, { plugins: [{ name: 'nothing', filter: () => 'closed' }] });
    expect(plan.unplaced[0]?.message).toContain('plugin nothing rejected');
  });

  it('gives the same placements as the fast path when plugins change nothing', () => {
    const many = {
      hosts: Array.from({ length: 30 }, (_, i) =>
        host(`h${i}`, ['a', 'b', 'c'][i % 3] as string, 2000, 4096),
      ),
      jobs: [],
      formations: [
        formation('demo', 'v1', { web: { count: 25, resources: { cpu: 300, memory: 300 } } }),
      ],
    };
    const noop: PlacementPlugin = { name: 'noop', score: () => 0 };
    for (const strategy of ['spread', 'binpack'] as const) {
      const fast = perHost(schedule(many, { strategy }));
      const slow = perHost(schedule(many, { strategy, plugins: [noop] }));
      expect([...slow.values()].sort()).toEqual([...fast.values()].sort());
    }
  });

  it('refuses a plugin with nothing to run', () => {
    expect(() => schedule(snap, { plugins: [{ name: 'empty' }] })).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }),
    );
  });
});

describe('Planner', () => {
  it('plans only what changed, and nothing twice', () => {
    const planner = new Planner();
    planner.setHost(host('h1', 'a'));
    planner.setHost(host('h2', 'b'));
    planner.setFormation(formation('a', 'v1', { web: { count: 2, resources: small } }));
    planner.setFormation(formation('b', 'v1', { web: { count: 1, resources: small } }));
    const first = planner.plan();
    expect(first.start).toHaveLength(3);
    // Nothing was committed, and nothing changed: nothing to plan.
    expect(planner.pending).toBe(false);
    expect(planner.plan().start).toEqual([]);
    // Commit a's jobs; scale b: only b is planned.
    first.start
      .filter((s) => s.app === 'a')
      .forEach((s, i) => planner.setJob({ ...s, id: `a${i}`, state: 'pending' }));
    planner.setFormation(formation('b', 'v1', { web: { count: 2, resources: small } }));
    const second = planner.plan();
    expect(second.start.map((s) => s.app)).toEqual(['b', 'b']);
  });

  it('does not plan a group again for the jobs its own plan placed, but does for any other', () => {
    const planner = new Planner();
    planner.setHost(host('h1', 'a'));
    planner.setFormation(formation('a', 'v1', { web: { count: 2, resources: small } }));
    const first = planner.plan();
    first.start.forEach((s, i) =>
      planner.setJob({ ...s, id: `p${i}`, state: 'pending' }, { planned: true }),
    );
    expect(planner.pending).toBe(false);
    // The placements hold their resources all the same.
    planner.setFormation(
      formation('b', 'v1', { web: { count: 1, resources: { cpu: 3900, memory: 1 } } }),
    );
    expect(planner.plan().unplaced.map((u) => u.app)).toEqual(['b']);
    // A job nobody planned (another scheduler's, say) marks its group: one too many.
    planner.setJob({ ...(first.start[0] as PlannedStart), id: 'other', state: 'pending' });
    expect(planner.pending).toBe(true);
    expect(planner.plan().stop).toHaveLength(1);
  });

  it('stops a planned job whose formation was removed before its commit landed', () => {
    const planner = new Planner();
    planner.setHost(host('h1', 'a'));
    planner.setFormation(formation('a', 'v1', { web: { count: 2, resources: small } }));
    const plan = planner.plan();
    planner.removeFormation('a', 'v1');
    expect(planner.plan()).toEqual({ start: [], stop: [], unplaced: [] });
    // The commit lands after the removal: its jobs must not be left running.
    plan.start.forEach((s, i) =>
      planner.setJob({ ...s, id: `late${i}`, state: 'pending' }, { planned: true }),
    );
    expect(planner.pending).toBe(true);
    expect(
      planner
        .plan()
        .stop.map((s) => s.jobId)
        .sort(),
    ).toEqual(['late0', 'late1']);
  });

  it('replaces a planned job whose host went down or began draining before its commit landed', () => {
    for (const state of ['down', 'draining'] as const) {
      const planner = new Planner();
      planner.setHost(host('h1', 'a'));
      planner.setHost(host('h2', 'b'));
      planner.setFormation(formation('a', 'v1', { web: { count: 1, resources: small } }));
      const [start] = planner.plan().start as [PlannedStart];
      planner.setHost(host(start.hostId, start.hostId === 'h1' ? 'a' : 'b', 4000, 8192, { state }));
      planner.setJob({ ...start, id: 'late', state: 'pending' }, { planned: true });
      expect(planner.pending).toBe(true);
      const next = planner.plan();
      expect(next.start.map((s) => s.hostId)).toEqual([start.hostId === 'h1' ? 'h2' : 'h1']);
      if (state === 'down') expect(next.stop).toEqual([{ jobId: 'late', reason: 'host-down' }]);
    }
  });

  it('refuses changes once loaded frozen', () => {
    const planner = new Planner();
    planner.load({ hosts: [host('h1', 'a')], jobs: [], formations: [] }, { frozen: true });
    expect(() => planner.setHost(host('h2', 'b'))).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }),
    );
  });
});

describe('bounds', () => {
  const hosts = [host('h1', 'a'), host('h2', 'b'), host('h3', 'c')];
  const huge = (resources: Resources, extra: Partial<Formation['processes'][string]> = {}) =>
    formation('typo', 'v1', { web: { count: 1e8, resources, ...extra } });

  it('refuses a process type that reserves no CPU or no memory', () => {
    for (const [resources, path] of [
      [{ cpu: 0, memory: 0 }, 'cpu'],
      [{ cpu: 100, memory: 0 }, 'memory'],
    ] as const) {
      expect(() => schedule({ hosts, jobs: [], formations: [huge(resources)] })).toThrow(
        expect.objectContaining({
          code: 'FLOTILLA_SCHEDULER_INVALID_SNAPSHOT',
          path: `formations[0].processes.web.resources.${path}`,
        }),
      );
    }
  });

  it.each(['spread', 'binpack'] as const)(
    '%s: a count of 1e8 is reported over the limit, nothing is placed for it, and the rest plans',
    (strategy) => {
      for (const resources of [
        { cpu: 1, memory: 1 },
        { cpu: 0, memory: 0 }, // only a Planner, which does not validate, can be given this
      ]) {
        const planner = new Planner({ strategy });
        planner.load({
          hosts,
          jobs: [job('typo', 'v1', 'web', 'h1', { id: 'running' })],
          formations: [
            huge(resources),
            formation('ok', 'v1', { web: { count: 2, resources: small } }),
          ],
        });
        const plan = planner.plan();
        expect(plan.start.map((s) => s.app)).toEqual(['ok', 'ok']);
        expect(plan.stop).toEqual([]);
        expect(plan.unplaced).toEqual([
          {
            app: 'typo',
            release: 'v1',
            type: 'web',
            count: 1e8 - 1,
            reason: 'over-limit',
            message: expect.stringContaining(
              'asks for 100000000 jobs, over the limit of 100000 per process type',
            ) as string,
          },
        ]);
      }
      const plan = schedule(
        { hosts, jobs: [], formations: [huge({ cpu: 1, memory: 1 })] },
        { strategy },
      );
      expect(plan.start).toEqual([]);
      expect(plan.unplaced).toEqual([
        expect.objectContaining({ count: 1e8, reason: 'over-limit' }),
      ]);
    },
  );

  it('counts an omni type on every eligible host against the limit', () => {
    const plan = schedule(
      {
        hosts,
        jobs: [],
        formations: [
          formation('agent', 'v1', { logs: { count: 2, resources: small, omni: true } }),
        ],
      },
      { maxJobsPerType: 5 },
    );
    expect(plan.start).toEqual([]);
    expect(plan.unplaced).toEqual([expect.objectContaining({ count: 6, reason: 'over-limit' })]);
    expect(plan.unplaced[0]?.message).toContain('2 per host on 3 eligible hosts');
  });

  it('places what fits of a count within the limit and reports the rest, without a job per missing one', () => {
    // 1 millicore and 1 MiB each: 12,000 fit on three hosts of 4000 millicores; 88,000 do not.
    const plan = schedule(
      {
        hosts,
        jobs: [],
        formations: [
          formation('tiny', 'v1', { web: { count: 100_000, resources: { cpu: 1, memory: 1 } } }),
        ],
      },
      { strategy: 'binpack' },
    );
    expect(plan.start).toHaveLength(12_000);
    expect(plan.unplaced).toEqual([
      expect.objectContaining({ count: 88_000, reason: 'no-capacity' }),
    ]);
  });

  it('refuses a bad maxJobsPerType', () => {
    for (const maxJobsPerType of [-1, 1.5, Number.NaN, Infinity]) {
      expect(() => new Planner({ maxJobsPerType })).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }),
      );
    }
  });
});

describe('validation', () => {
  it.each([
    [{ hosts: [host('h', 'a'), host('h', 'b')], jobs: [], formations: [] }, 'hosts[1].id'],
    [{ hosts: [host('h', 'a', -1)], jobs: [], formations: [] }, 'hosts[0].capacity.cpu'],
    [
      {
        hosts: [],
        jobs: [job('a', 'v1', 'web', 'h', { id: 'x' }), job('a', 'v1', 'web', 'h', { id: 'x' })],
        formations: [],
      },
      'jobs[1].id',
    ],
    [
      {
        hosts: [],
        jobs: [],
        formations: [formation('a', 'v1', { web: { count: 1.5, resources: small } })],
      },
      'formations[0].processes.web.count',
    ],
    [
      { hosts: [], jobs: [], formations: [formation('a', 'v1', {}), formation('a', 'v1', {})] },
      'formations[1]',
    ],
  ] as [ClusterSnapshot, string][])('refuses a bad snapshot, naming %#', (snap, path) => {
    expect(() => schedule(snap)).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_SNAPSHOT', path }),
    );
  });

  describe('hostile input', () => {
    const h = (extra: object = {}): unknown => ({ ...host('h1', 'a'), ...extra });
    const j = (extra: object = {}): unknown => ({ ...job('a', 'v1', 'web', 'h1'), ...extra });
    const spec = (extra: object = {}): unknown => ({ count: 1, resources: small, ...extra });
    const f = (processes: unknown = { web: spec() }, extra: object = {}): unknown => ({
      app: 'a',
      release: 'v1',
      processes,
      ...extra,
    });
    const snap = (extra: object): ClusterSnapshot =>
      ({ hosts: [h()], jobs: [], formations: [f()], ...extra }) as ClusterSnapshot;
    const hostile = { toString: (): string => assert.fail('toString called') };
    const web = 'formations[0].processes.web';
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [, h()];
    it.each([
      ['a null snapshot', null, 'snapshot'],
      ['hosts: [null]', snap({ hosts: [null] }), 'hosts[0]'],
      ['a hole in hosts', snap({ hosts: sparse }), 'hosts[0]'],
      ['jobs: [null]', snap({ jobs: [null] }), 'jobs[0]'],
      ['formations: [null]', snap({ formations: [null] }), 'formations[0]'],
      ['processes: null', snap({ formations: [f(null)] }), 'formations[0].processes'],
      ['processes: []', snap({ formations: [f([])] }), 'formations[0].processes'],
      ['a null process type', snap({ formations: [f({ web: null })] }), web],
      [
        'resources: null',
        snap({ formations: [f({ web: spec({ resources: null }) })] }),
        `${web}.resources`,
      ],
      [
        'zero CPU',
        snap({ formations: [f({ web: spec({ resources: { cpu: 0, memory: 1 } }) })] }),
        `${web}.resources.cpu`,
      ],
      [
        'half a millicore',
        snap({ formations: [f({ web: spec({ resources: { cpu: 0.5, memory: 1 } }) })] }),
        `${web}.resources.cpu`,
      ],
      [
        'memory NaN',
        snap({ formations: [f({ web: spec({ resources: { cpu: 1, memory: NaN } }) })] }),
        `${web}.resources.memory`,
      ],
      ['count NaN', snap({ formations: [f({ web: spec({ count: NaN }) })] }), `${web}.count`],
      ['count -1', snap({ formations: [f({ web: spec({ count: -1 }) })] }), `${web}.count`],
      [
        'count Infinity',
        snap({ formations: [f({ web: spec({ count: Infinity }) })] }),
        `${web}.count`,
      ],
      ['omni: "yes"', snap({ formations: [f({ web: spec({ omni: 'yes' }) })] }), `${web}.omni`],
      [
        'constraints: null',
        snap({ formations: [f({ web: spec({ constraints: null }) })] }),
        `${web}.constraints`,
      ],
      [
        'capacity Infinity',
        snap({ hosts: [h({ capacity: { cpu: Infinity, memory: 1 } })] }),
        'hosts[0].capacity.cpu',
      ],
      [
        'capacity 2^60',
        snap({ hosts: [h({ capacity: { cpu: 2 ** 60, memory: 1 } })] }),
        'hosts[0].capacity.cpu',
      ],
      [
        'capacity 1.5',
        snap({ hosts: [h({ capacity: { cpu: 1.5, memory: 1 } })] }),
        'hosts[0].capacity.cpu',
      ],
      [
        'capacity "1000"',
        snap({ hosts: [h({ capacity: { cpu: '1000', memory: 1 } })] }),
        'hosts[0].capacity.cpu',
      ],
      ['tags: null', snap({ hosts: [h({ tags: null })] }), 'hosts[0].tags'],
      [
        'a state with a hostile toString',
        snap({ hosts: [h({ state: hostile })] }),
        'hosts[0].state',
      ],
      [
        'a job state with a hostile toString',
        snap({ jobs: [j({ state: hostile })] }),
        'jobs[0].state',
      ],
      [
        'job resources -1',
        snap({ jobs: [j({ resources: { cpu: -1, memory: 1 } })] }),
        'jobs[0].resources.cpu',
      ],
      ['createdAt NaN', snap({ jobs: [j({ createdAt: NaN })] }), 'jobs[0].createdAt'],
      [
        'createdAt "yesterday"',
        snap({ jobs: [j({ createdAt: 'yesterday' })] }),
        'jobs[0].createdAt',
      ],
    ] as [string, ClusterSnapshot, string][])('refuses %s, naming it', (_, input, path) => {
      expect(() => schedule(input)).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_SNAPSHOT', path }),
      );
    });

    it('quotes a huge id in a short message', () => {
      const id = 'x'.repeat(1_000_000);
      const error = (() => {
        try {
          schedule(snap({ hosts: [h({ id }), h({ id })] }));
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(error).toMatchObject({
        code: 'FLOTILLA_SCHEDULER_INVALID_SNAPSHOT',
        path: 'hosts[1].id',
      });
      expect(error?.message.length).toBeLessThan(200);
    });

    it('keeps names apart whatever characters they hold', () => {
      // Names joined with NUL collided: two formations were "duplicates", two groups were one.
      const plan = schedule({
        hosts: [host('h1', 'a')],
        jobs: [],
        formations: [
          formation('a\u0000b', 'c', { web: { count: 1, resources: small } }),
          formation('a', 'b\u0000c', { web: { count: 1, resources: small } }),
          formation('a', 'v1\u0000w', { x: { count: 1, resources: small } }),
          formation('a', 'v1', { 'w\u0000x': { count: 2, resources: small } }),
          formation('a/b', 'v/1', { web: { count: 1, resources: small } }),
        ],
      });
      expect(plan.unplaced).toEqual([]);
      expect(plan.start.map((s) => JSON.stringify([s.app, s.release, s.type])).sort()).toEqual(
        [
          ['a\u0000b', 'c', 'web'],
          ['a', 'b\u0000c', 'web'],
          ['a', 'v1\u0000w', 'x'],
          ['a', 'v1', 'w\u0000x'],
          ['a', 'v1', 'w\u0000x'],
          ['a/b', 'v/1', 'web'],
        ]
          .map((k) => JSON.stringify(k))
          .sort(),
      );
    });

    it.each(['spread', 'binpack'] as const)(
      '%s: keeps constraint sets apart whatever characters their tags hold',
      (strategy) => {
        // { a: 'b=c' } and { 'a=b': 'c' } had the same key, so one set used the other's hosts.
        const plan = schedule(
          {
            hosts: [
              host('h1', 'z', 4000, 8192, { tags: { a: 'b=c' } }),
              host('h2', 'z', 4000, 8192, { tags: { 'a=b': 'c' } }),
            ],
            jobs: [],
            formations: [
              formation('x', 'v1', {
                web: { count: 1, resources: small, constraints: { a: 'b=c' } },
              }),
              formation('y', 'v1', {
                web: { count: 1, resources: small, constraints: { 'a=b': 'c' } },
              }),
            ],
          },
          { strategy },
        );
        expect(new Map(plan.start.map((s) => [s.app, s.hostId]))).toEqual(
          new Map([
            ['x', 'h1'],
            ['y', 'h2'],
          ]),
        );
      },
    );

    it('takes null options as the defaults', () => {
      expect(schedule(snap({}), null as unknown as ScheduleOptions).start).toHaveLength(1);
    });

    it.each([
      ['plugins that are not an array', { plugins: {} }],
      ['a plugin whose filter is not a function', { plugins: [{ name: 'p', filter: 'no' }] }],
      ['a NaN seed', { seed: NaN }],
      ['an empty spreadTag', { spreadTag: '' }],
    ] as [string, ScheduleOptions][])('refuses %s with a coded error', (_, options) => {
      expect(() => schedule(snap({}), options)).toThrow(
        expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }),
      );
    });
  });

  it('refuses an unknown strategy', () => {
    expect(() =>
      schedule({ hosts: [], jobs: [], formations: [] }, { strategy: 'random' as 'spread' }),
    ).toThrow(expect.objectContaining({ code: 'FLOTILLA_SCHEDULER_INVALID_OPTIONS' }));
  });
});

describe('properties', () => {
  const arbSnapshot = fc
    .record({
      hosts: fc.array(
        fc.record({
          zone: fc.constantFrom('a', 'b', 'c'),
          cpu: fc.integer({ min: 0, max: 4000 }),
          memory: fc.integer({ min: 0, max: 4000 }),
          state: fc.constantFrom('up', 'up', 'up', 'draining', 'down'),
          ssd: fc.boolean(),
        }),
        { maxLength: 12 },
      ),
      formations: fc.array(
        fc.record({
          types: fc.array(
            fc.record({
              count: fc.integer({ min: 0, max: 12 }),
              cpu: fc.integer({ min: 1, max: 1500 }),
              memory: fc.integer({ min: 1, max: 1500 }),
              ssd: fc.boolean(),
              omni: fc.boolean(),
            }),
            { minLength: 1, maxLength: 3 },
          ),
        }),
        { maxLength: 4 },
      ),
    })
    .map(({ hosts, formations }): ClusterSnapshot => ({
      hosts: hosts.map((h, i) => ({
        id: `h${i}`,
        tags: h.ssd ? { zone: h.zone, disk: 'ssd' } : { zone: h.zone },
        capacity: { cpu: h.cpu, memory: h.memory },
        state: h.state as HostSnapshot['state'],
      })),
      jobs: [],
      formations: formations.map((f, a) => ({
        app: `app${a}`,
        release: 'v1',
        processes: Object.fromEntries(
          f.types.map((t, i) => [
            `t${i}`,
            {
              count: t.count,
              resources: { cpu: t.cpu, memory: t.memory },
              ...(t.ssd ? { constraints: { disk: 'ssd' } } : {}),
              ...(t.omni ? { omni: true } : {}),
            },
          ]),
        ),
      })),
    }));

  /** Jobs that could not be placed had nowhere to go: no eligible up host has room for one. */
  function checkComplete(snap: ClusterSnapshot, plan: Plan): void {
    const after = apply(snap, plan);
    const used = new Map<string, { cpu: number; memory: number }>();
    for (const j of after.jobs) {
      const u = used.get(j.hostId) ?? { cpu: 0, memory: 0 };
      used.set(j.hostId, { cpu: u.cpu + j.resources.cpu, memory: u.memory + j.resources.memory });
    }
    for (const u of plan.unplaced) {
      const spec = snap.formations.find((f) => f.app === u.app)?.processes[u.type];
      if (spec === undefined || spec.omni === true || u.reason !== 'no-capacity') continue;
      for (const h of snap.hosts) {
        if (h.state !== 'up') continue;
        if (Object.entries(spec.constraints ?? {}).some(([k, v]) => h.tags?.[k] !== v)) continue;
        const x = used.get(h.id) ?? { cpu: 0, memory: 0 };
        const fits =
          x.cpu + spec.resources.cpu <= h.capacity.cpu &&
          x.memory + spec.resources.memory <= h.capacity.memory;
        expect(fits, `${u.app}/${u.type} left unplaced while ${h.id} has room`).toBe(false);
      }
    }
  }

  const noop = { name: 'noop', score: () => 0 };
  for (const options of [
    { strategy: 'spread' },
    { strategy: 'binpack' },
    { strategy: 'spread', plugins: [noop] },
    { strategy: 'binpack', plugins: [noop] },
  ] as ScheduleOptions[]) {
    it(`${options.strategy}${options.plugins ? ' with plugins' : ''}: respects capacity, constraints and host state, and converges`, () => {
      fc.assert(
        fc.property(arbSnapshot, fc.integer(), (snap, seed) => {
          const plan = schedule(snap, { ...options, seed });
          checkCapacity(snap, plan);
          checkComplete(snap, plan);
          const byId = new Map(snap.hosts.map((h) => [h.id, h]));
          for (const s of plan.start) {
            const h = byId.get(s.hostId) as HostSnapshot;
            expect(h.state).toBe('up');
            const spec = snap.formations.find((f) => f.app === s.app)?.processes[s.type];
            for (const [k, v] of Object.entries(spec?.constraints ?? {}))
              expect(h.tags?.[k]).toBe(v);
          }
          // Carrying out the plan leaves nothing to do but what could not be placed.
          const next = apply(snap, plan);
          const again = schedule(next, { ...options, seed });
          expect(again.stop).toEqual([]);
          expect(again.start).toEqual([]);
          expect(again.unplaced.reduce((a, u) => a + u.count, 0)).toBe(
            plan.unplaced.reduce((a, u) => a + u.count, 0),
          );
        }),
        { numRuns: 300 },
      );
    });
  }

  for (const strategy of ['spread', 'binpack'] as const) {
    it(`${strategy}: a Planner kept current over several plans never over-commits and leaves no room unused`, () => {
      fc.assert(
        fc.property(arbSnapshot, fc.integer({ min: 2, max: 3 }), (snap, factor) => {
          const planner = new Planner({ strategy });
          planner.load({ hosts: snap.hosts, jobs: [], formations: snap.formations });
          let current: ClusterSnapshot = snap;
          // Commit a plan, scale every type up, plan again on the same planner.
          for (const round of [1, factor]) {
            if (round > 1) {
              current = {
                ...current,
                formations: current.formations.map((f) => ({
                  ...f,
                  processes: Object.fromEntries(
                    Object.entries(f.processes).map(([t, p]) => [
                      t,
                      { ...p, count: p.count * round },
                    ]),
                  ),
                })),
              };
              for (const f of current.formations) planner.setFormation(f);
            }
            const plan = planner.plan();
            checkCapacity(current, plan);
            checkComplete(current, plan);
            const next = apply(current, plan);
            const before = new Set(current.jobs.map((j) => j.id));
            for (const j of next.jobs) if (!before.has(j.id)) planner.setJob(j);
            current = next;
          }
        }),
        { numRuns: 200 },
      );
    });
  }
});
