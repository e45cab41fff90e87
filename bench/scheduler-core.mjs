#!/usr/bin/env node
// The scheduler's pure core at scale. Prints one JSON object.
//
//   node --expose-gc bench/scheduler-core.mjs [--hosts 10000] [--jobs 1000000] [--seed 1]
//
// Cluster: hosts of mixed sizes in four zones with 30% existing load; 1,000,000 new jobs of
// mixed sizes over many apps, some with constraints. Reports bulk placement rate and peak
// memory for each strategy, spread quality (one job per host per app and type, zone balance,
// host utilisation evenness vs round-robin), binpack quality on an empty cluster (hosts used vs
// a lower bound), and binpack in two dimensions: 1,000,000 CPU-heavy and memory-heavy jobs of
// uncorrelated sizes on the empty cluster, against the lower bound and against a plain
// first-fit-decreasing baseline with the shapes alternating.
// FLOTILLA_SCHEDULER_ENTRY points the bench at another build of the package (a module that
// exports schedule and Planner), to compare builds without rebuilding dist.
const { Planner, schedule } = await import(
  process.env.FLOTILLA_SCHEDULER_ENTRY ?? '@flotilla/scheduler'
);

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const HOSTS = arg('hosts', 10_000);
const JOBS = arg('jobs', 1_000_000);
const SEED = arg('seed', 1);

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(SEED);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const ZONES = ['a', 'b', 'c', 'd'];
// Hosts of 32 to 128 cores; jobs of 50 to 1000 millicores. 1M new jobs need about half of
// the cluster, on top of the 30% already in use.
const HOST_SIZES = [
  { cpu: 32000, memory: 131072 },
  { cpu: 64000, memory: 262144 },
  { cpu: 96000, memory: 393216 },
  { cpu: 128000, memory: 524288 },
];
const JOB_SIZES = [
  { cpu: 50, memory: 128 },
  { cpu: 100, memory: 256 },
  { cpu: 250, memory: 512 },
  { cpu: 500, memory: 1024 },
  { cpu: 1000, memory: 4096 },
];

function makeHosts() {
  return Array.from({ length: HOSTS }, (_, i) => ({
    id: `host-${i}`,
    tags: {
      zone: ZONES[i % 4],
      ...(i % 5 === 0 ? { disk: 'ssd' } : {}),
      ...(i % 50 === 0 ? { gpu: 'true' } : {}),
    },
    capacity: HOST_SIZES[Math.floor(i / 4) % HOST_SIZES.length],
    state: 'up',
  }));
}

/** Formations for `jobs` new jobs: many apps, 1 to 200 jobs per type, ~10% constrained. */
function makeFormations(jobs, release) {
  const formations = [];
  let left = jobs;
  let app = 0;
  while (left > 0) {
    const processes = {};
    for (const type of ['web', 'worker']) {
      if (left <= 0) break;
      const count = Math.min(left, 1 + Math.floor(rand() * 200));
      const r = rand();
      const constraints = r < 0.08 ? { disk: 'ssd' } : r < 0.1 ? { zone: pick(ZONES) } : undefined;
      processes[type] = {
        count,
        resources: pick(JOB_SIZES),
        ...(constraints ? { constraints } : {}),
      };
      left -= count;
    }
    formations.push({ app: `app-${app++}`, release, processes });
  }
  return formations;
}

/**
 * Existing load: about 30% of each host's CPU, as jobs of 500 older apps, with the formations
 * that keep them as they are (one process type per job size), so reconcile leaves them alone.
 */
function makeExisting(hosts) {
  const jobs = [];
  let n = 0;
  for (const host of hosts) {
    let cpu = 0;
    while (cpu < host.capacity.cpu * 0.3) {
      const size = JOB_SIZES[n % JOB_SIZES.length];
      jobs.push({
        id: `old-${n}`,
        app: `old-${n % 500}`,
        release: 'v1',
        type: `web${size.cpu}`,
        hostId: host.id,
        resources: size,
        state: 'up',
        createdAt: n,
      });
      cpu += size.cpu;
      n++;
    }
  }
  const perApp = new Map();
  for (const j of jobs) {
    let f = perApp.get(j.app);
    if (!f) perApp.set(j.app, (f = { app: j.app, release: 'v1', processes: {} }));
    f.processes[j.type] ??= { count: 0, resources: j.resources };
    f.processes[j.type].count++;
  }
  return { jobs, formations: [...perApp.values()] };
}

function measure(strategy, snapshot) {
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = heapBefore;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 5);
  const t0 = performance.now();
  const plan = schedule(snapshot, { strategy, seed: SEED });
  const ms = performance.now() - t0;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  // The same work in two steps: loading the snapshot into a Planner (hosts, the existing jobs,
  // formations), then planning, which is where placement happens.
  global.gc?.();
  const planner = new Planner({ strategy, seed: SEED });
  const t1 = performance.now();
  planner.load(snapshot);
  const loadMs = performance.now() - t1;
  const t2 = performance.now();
  const again = planner.plan({ all: true });
  const planMs = performance.now() - t2;
  if (again.start.length !== plan.start.length) throw new Error('plans differ');
  return { plan, ms, loadMs, planMs, peakHeapMiB: Math.round((peak - heapBefore) / 1048576) };
}

const timings = (m) => ({
  scheduleMs: Math.round(m.ms),
  loadSnapshotMs: Math.round(m.loadMs),
  planMs: Math.round(m.planMs),
  placementsPerSecond: Math.round(m.plan.start.length / (m.planMs / 1000)),
  endToEndJobsPerSecond: Math.round(m.plan.start.length / (m.ms / 1000)),
});

function utilisationStats(hosts, jobs, starts) {
  const used = new Map(hosts.map((h) => [h.id, 0]));
  for (const j of jobs) used.set(j.hostId, used.get(j.hostId) + j.resources.cpu);
  for (const s of starts) used.set(s.hostId, used.get(s.hostId) + s.resources.cpu);
  const utils = hosts.map((h) => used.get(h.id) / h.capacity.cpu);
  const mean = utils.reduce((a, b) => a + b, 0) / utils.length;
  const sd = Math.sqrt(utils.reduce((a, b) => a + (b - mean) ** 2, 0) / utils.length);
  return { mean: round(mean), stddev: round(sd), max: round(Math.max(...utils)) };
}

const round = (x) => Math.round(x * 1000) / 1000;

function spreadQuality(hosts, formations, plan) {
  const byGroup = new Map();
  for (const s of plan.start) {
    const key = `${s.app}|${s.type}`;
    let g = byGroup.get(key);
    if (!g) byGroup.set(key, (g = { hosts: new Map(), zones: new Map() }));
    g.hosts.set(s.hostId, (g.hosts.get(s.hostId) ?? 0) + 1);
  }
  const zoneOf = new Map(hosts.map((h) => [h.id, h.tags.zone]));
  let groups = 0;
  let groupsWithDoubledHost = 0;
  let zoneImbalanced = 0;
  let maxZoneSpread = 0;
  for (const f of formations) {
    for (const [type, spec] of Object.entries(f.processes)) {
      const g = byGroup.get(`${f.app}|${type}`);
      if (!g) continue;
      groups++;
      if ([...g.hosts.values()].some((n) => n > 1)) groupsWithDoubledHost++;
      if (spec.constraints?.zone) continue; // pinned to one zone
      const perZone = new Map(ZONES.map((z) => [z, 0]));
      for (const [h, n] of g.hosts) perZone.set(zoneOf.get(h), perZone.get(zoneOf.get(h)) + n);
      const counts = [...perZone.values()];
      const spread = Math.max(...counts) - Math.min(...counts);
      maxZoneSpread = Math.max(maxZoneSpread, spread);
      if (spread > 1) zoneImbalanced++;
    }
  }
  return {
    groups,
    groupsWithAJobTwiceOnOneHost: groupsWithDoubledHost,
    groupsWithZonesOffByMoreThanOne: zoneImbalanced,
    maxZoneSpread,
  };
}

/** Round-robin over up hosts with a fit check: the baseline for utilisation evenness. */
function roundRobin(hosts, jobs, formations) {
  const free = new Map(
    hosts.map((h) => [h.id, { cpu: h.capacity.cpu, memory: h.capacity.memory }]),
  );
  for (const j of jobs) {
    const f = free.get(j.hostId);
    f.cpu -= j.resources.cpu;
    f.memory -= j.resources.memory;
  }
  const starts = [];
  const failed = new Set();
  let next = 0;
  for (const fm of formations) {
    for (const [type, spec] of Object.entries(fm.processes)) {
      const sizeKey = `${JSON.stringify(spec.constraints ?? {})}|${spec.resources.cpu}`;
      for (let k = 0; k < spec.count && !failed.has(sizeKey); k++) {
        let placed = false;
        for (let tries = 0; tries < hosts.length && !placed; tries++) {
          const h = hosts[next++ % hosts.length];
          if (
            spec.constraints &&
            Object.entries(spec.constraints).some(([t, v]) => h.tags[t] !== v)
          )
            continue;
          const f = free.get(h.id);
          if (f.cpu < spec.resources.cpu || f.memory < spec.resources.memory) continue;
          f.cpu -= spec.resources.cpu;
          f.memory -= spec.resources.memory;
          starts.push({ app: fm.app, type, hostId: h.id, resources: spec.resources });
          placed = true;
        }
        if (!placed) failed.add(sizeKey);
      }
    }
  }
  return starts;
}

function binpackLowerBound(hosts, formations) {
  let cpu = 0;
  let mem = 0;
  for (const f of formations)
    for (const s of Object.values(f.processes)) {
      cpu += s.count * s.resources.cpu;
      mem += s.count * s.resources.memory;
    }
  const need = (key, total) => {
    const caps = hosts.map((h) => h.capacity[key]).sort((a, b) => b - a);
    let n = 0;
    let sum = 0;
    while (sum < total && n < caps.length) sum += caps[n++];
    return n;
  };
  return Math.max(need('cpu', cpu), need('memory', mem));
}

/**
 * Two-dimensional shapes: `jobs` new jobs in groups of 1 to 200, each group either CPU-heavy
 * (200 to 1000 millicores, 64 to 512 MiB) or memory-heavy (50 to 250 millicores, 1 to 4 GiB),
 * CPU and memory drawn independently. Hosts have 4 GiB per core, so neither shape matches
 * them, while the whole demand is about balanced between the two dimensions: only a packer
 * that mixes shapes on a host reaches the lower bound.
 */
function makeMixedFormations(jobs) {
  const r = rng(SEED + 1);
  const between = (lo, hi, step) => lo + step * Math.floor(r() * ((hi - lo) / step + 1));
  const formations = [];
  let left = jobs;
  for (let app = 0; left > 0; app++) {
    const count = Math.min(left, 1 + Math.floor(r() * 200));
    const resources =
      r() < 0.5
        ? { cpu: between(200, 1000, 50), memory: between(64, 512, 64) }
        : { cpu: between(50, 250, 50), memory: between(1024, 4096, 256) };
    formations.push({
      app: `mixed-${app}`,
      release: 'v1',
      processes: { main: { count, resources } },
    });
    left -= count;
  }
  return formations;
}

/**
 * The baseline for two dimensions: plain first fit over hosts largest first, jobs biggest
 * first (dominant share of the largest host), CPU-heavy and memory-heavy jobs alternating.
 * A max segment tree of free CPU and memory finds the first fit.
 */
function firstFitDecreasing(hosts, formations) {
  const t0 = performance.now();
  // Shares of the cluster's total capacity: what makes a job CPU-heavy and a host large.
  const totalCpu = hosts.reduce((a, h) => a + h.capacity.cpu, 0);
  const totalMem = hosts.reduce((a, h) => a + h.capacity.memory, 0);
  const size = (r) => Math.max(r.cpu / totalCpu, r.memory / totalMem);
  const kinds = [[], []];
  for (const f of formations)
    for (const s of Object.values(f.processes))
      if (s.count > 0)
        kinds[s.resources.cpu / totalCpu >= s.resources.memory / totalMem ? 0 : 1].push(s);
  for (const kind of kinds) kind.sort((a, b) => size(b.resources) - size(a.resources));
  const order = hosts
    .map((h, i) => i)
    .sort((a, b) => size(hosts[b].capacity) - size(hosts[a].capacity) || a - b);
  let leaves = 1;
  while (leaves < order.length) leaves *= 2;
  const cpu = new Float64Array(2 * leaves).fill(-1);
  const mem = new Float64Array(2 * leaves).fill(-1);
  order.forEach((h, i) => {
    cpu[leaves + i] = hosts[h].capacity.cpu;
    mem[leaves + i] = hosts[h].capacity.memory;
  });
  for (let i = leaves - 1; i >= 1; i--) {
    cpu[i] = Math.max(cpu[2 * i], cpu[2 * i + 1]);
    mem[i] = Math.max(mem[2 * i], mem[2 * i + 1]);
  }
  const used = new Uint8Array(leaves);
  let placed = 0;
  let unplaced = 0;
  const descend = (i, r) => {
    if (cpu[i] < r.cpu || mem[i] < r.memory) return -1;
    if (i >= leaves) return i;
    const left = descend(2 * i, r);
    return left >= 0 ? left : descend(2 * i + 1, r);
  };
  const place = (r) => {
    let i = descend(1, r);
    if (i < 0) return void unplaced++;
    used[i - leaves] = 1;
    cpu[i] -= r.cpu;
    mem[i] -= r.memory;
    for (i >>= 1; i >= 1; i >>= 1) {
      cpu[i] = Math.max(cpu[2 * i], cpu[2 * i + 1]);
      mem[i] = Math.max(mem[2 * i], mem[2 * i + 1]);
    }
    placed++;
  };
  // One job of each kind in turn: [group, jobs of it placed] per kind.
  const at = kinds.map(() => [0, 0]);
  while (kinds.some((kind, k) => at[k][0] < kind.length)) {
    kinds.forEach((kind, k) => {
      const spec = kind[at[k][0]];
      if (spec === undefined) return;
      place(spec.resources);
      if (++at[k][1] === spec.count) at[k] = [at[k][0] + 1, 0];
    });
  }
  const ms = performance.now() - t0;
  return { placed, unplaced, hostsUsed: used.reduce((s, u) => s + u, 0), ms };
}

const hosts = makeHosts();
const existing = makeExisting(hosts);
const newFormations = makeFormations(JOBS, 'v1');
const snapshot = {
  hosts,
  jobs: existing.jobs,
  formations: [...existing.formations, ...newFormations],
};

const spread = measure('spread', snapshot);
const binpack = measure('binpack', snapshot);
const rr = roundRobin(hosts, existing.jobs, newFormations);

// Binpack quality on an empty cluster.
const emptySnapshot = { hosts, jobs: [], formations: newFormations };
const emptyBinpack = measure('binpack', emptySnapshot);
const usedHosts = new Set(emptyBinpack.plan.start.map((s) => s.hostId)).size;
const lowerBound = binpackLowerBound(hosts, newFormations);

// Two dimensions: CPU-heavy and memory-heavy jobs on an empty cluster.
const mixedFormations = makeMixedFormations(JOBS);
const mixed = measure('binpack', { hosts, jobs: [], formations: mixedFormations });
const mixedUsed = new Set(mixed.plan.start.map((s) => s.hostId)).size;
const mixedBound = binpackLowerBound(hosts, mixedFormations);
const ffd = firstFitDecreasing(hosts, mixedFormations);

const result = {
  bench: 'scheduler-core',
  hosts: HOSTS,
  existingJobs: existing.jobs.length,
  newJobs: JOBS,
  apps: newFormations.length,
  spread: {
    ...timings(spread),
    placed: spread.plan.start.length,
    unplaced: spread.plan.unplaced.reduce((a, u) => a + u.count, 0),
    stops: spread.plan.stop.length,
    peakHeapMiB: spread.peakHeapMiB,
    quality: spreadQuality(hosts, newFormations, spread.plan),
    utilisation: utilisationStats(hosts, existing.jobs, spread.plan.start),
    roundRobinUtilisation: utilisationStats(hosts, existing.jobs, rr),
  },
  binpack: {
    ...timings(binpack),
    placed: binpack.plan.start.length,
    unplaced: binpack.plan.unplaced.reduce((a, u) => a + u.count, 0),
    peakHeapMiB: binpack.peakHeapMiB,
  },
  binpackEmptyCluster: {
    ...timings(emptyBinpack),
    placed: emptyBinpack.plan.start.length,
    hostsUsed: usedHosts,
    lowerBound,
    ratio: round(usedHosts / lowerBound),
  },
  binpackMixedShapes: {
    ...timings(mixed),
    placed: mixed.plan.start.length,
    unplaced: mixed.plan.unplaced.reduce((a, u) => a + u.count, 0),
    hostsUsed: mixedUsed,
    lowerBound: mixedBound,
    ratio: round(mixedUsed / mixedBound),
    firstFitDecreasing: {
      placed: ffd.placed,
      unplaced: ffd.unplaced,
      hostsUsed: ffd.hostsUsed,
      ratio: round(ffd.hostsUsed / mixedBound),
      placementsPerSecond: Math.round(ffd.placed / (ffd.ms / 1000)),
    },
  },
};
console.log(JSON.stringify(result, null, 2));
