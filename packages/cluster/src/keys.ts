import { isValidId, validateId } from './ids.js';

/** What a cluster key holds, and the ids in it: the result of {@link ClusterKeys.parse}. */
export type ClusterKey =
  | { readonly kind: 'host'; readonly hostId: string }
  | { readonly kind: 'heartbeat'; readonly hostId: string }
  | { readonly kind: 'host-control'; readonly hostId: string }
  | { readonly kind: 'alloc'; readonly hostId: string }
  | { readonly kind: 'formation'; readonly app: string; readonly release: string }
  | { readonly kind: 'release'; readonly app: string; readonly release: string }
  | { readonly kind: 'job'; readonly hostId: string; readonly jobId: string }
  | { readonly kind: 'job-status'; readonly hostId: string; readonly jobId: string }
  | { readonly kind: 'scheduler'; readonly schedulerId: string }
  | { readonly kind: 'scheduler-epoch' }
  /** Under a known kind's prefix but not a key any writer makes: reported, never ignored. */
  | { readonly kind: 'invalid'; readonly reason: string };

const HOST_KINDS = {
  hosts: 'host',
  heartbeats: 'heartbeat',
  'host-control': 'host-control',
  alloc: 'alloc',
} as const;

/**
 * Where the cluster state lives in the store. Host agents, schedulers, the controller and
 * operators' tools all read these keys, so the layout is part of the API. Each key has one
 * writer (see the package README), so that no writer can overwrite another's field:
 *
 * | key                             | record        | written by                                   |
 * | ------------------------------- | ------------- | -------------------------------------------- |
 * | `hosts/<host>`                  | HostRecord    | the host agent (address, tags, capacity)     |
 * | `heartbeats/<host>`             | Heartbeat     | the host agent, under its lease (liveness)   |
 * | `host-control/<host>`           | HostControl   | operators (eligibility, drain)               |
 * | `formations/<app>/<release>`    | Formation     | the controller                               |
 * | `releases/<app>/<release>`      | ReleaseRecord | the controller, once (immutable)             |
 * | `jobs/<host>/<job>`             | JobRecord     | the scheduler (placement, desired state)     |
 * | `job-status/<host>/<job>`       | JobStatus     | the host agent (observed state)              |
 * | `alloc/<host>`                  | HostAlloc     | the scheduler, in every commit placing there |
 * | `coordination/schedulers/<id>`  | member        | each scheduler, under its lease              |
 * | `coordination/scheduler-epoch`  | SchedulerEpoch| schedulers, compare-and-set                  |
 *
 * Every method that builds a key validates its ids ({@link validateId}): a key that could not
 * be parsed back to the same ids is never built.
 */
export class ClusterKeys {
  /** The prefix every key starts with (default `'cluster/'`). */
  readonly prefix: string;

  constructor(prefix = 'cluster/') {
    this.prefix = prefix;
  }

  /** Prefix of every host record. */
  get hosts(): string {
    return `${this.prefix}hosts/`;
  }
  /** Key of a host's record. */
  host(hostId: string): string {
    validateId('host', hostId);
    return `${this.hosts}${hostId}`;
  }
  /** Prefix of every heartbeat. */
  get heartbeats(): string {
    return `${this.prefix}heartbeats/`;
  }
  /** Key of a host's heartbeat, attached to its agent's lease. */
  heartbeat(hostId: string): string {
    validateId('host', hostId);
    return `${this.heartbeats}${hostId}`;
  }
  /** Prefix of every host's operator settings. */
  get hostControls(): string {
    return `${this.prefix}host-control/`;
  }
  /** Key of a host's operator settings (eligibility, drain). */
  hostControl(hostId: string): string {
    validateId('host', hostId);
    return `${this.hostControls}${hostId}`;
  }
  /** Prefix of every formation. */
  get formations(): string {
    return `${this.prefix}formations/`;
  }
  /** Prefix of an app's formations. */
  formationsOf(app: string): string {
    validateId('app', app);
    return `${this.formations}${app}/`;
  }
  /** Key of the formation of an app's release. */
  formation(app: string, release: string): string {
    validateId('release', release);
    return `${this.formationsOf(app)}${release}`;
  }
  /** Prefix of every release record. */
  get releases(): string {
    return `${this.prefix}releases/`;
  }
  /** Prefix of an app's release records. */
  releasesOf(app: string): string {
    validateId('app', app);
    return `${this.releases}${app}/`;
  }
  /** Key of a release record. */
  release(app: string, release: string): string {
    validateId('release', release);
    return `${this.releasesOf(app)}${release}`;
  }
  /** Prefix of every job record. */
  get jobs(): string {
    return `${this.prefix}jobs/`;
  }
  /** Every job assigned to a host: what its agent watches. */
  jobsOf(hostId: string): string {
    validateId('host', hostId);
    return `${this.jobs}${hostId}/`;
  }
  /** Key of a job record. */
  job(hostId: string, jobId: string): string {
    validateId('job', jobId);
    return `${this.jobsOf(hostId)}${jobId}`;
  }
  /** Prefix of every job status. */
  get jobStatuses(): string {
    return `${this.prefix}job-status/`;
  }
  /** Prefix of the statuses of a host's jobs. */
  jobStatusesOf(hostId: string): string {
    validateId('host', hostId);
    return `${this.jobStatuses}${hostId}/`;
  }
  /** Key of a job's observed status. */
  jobStatus(hostId: string, jobId: string): string {
    validateId('job', jobId);
    return `${this.jobStatusesOf(hostId)}${jobId}`;
  }
  /** Prefix of every allocation summary. */
  get allocs(): string {
    return `${this.prefix}alloc/`;
  }
  /** Key of a host's allocation summary. */
  alloc(hostId: string): string {
    validateId('host', hostId);
    return `${this.allocs}${hostId}`;
  }
  /**
   * Prefix of the schedulers' own coordination: their membership keys and the epoch. It sorts
   * before `jobs/`, with every other key a scheduler reads: a scheduler can watch all of that
   * but the job records (which it alone writes, while it is the only one) as one ordered range
   * (see `watchBefore` of `listAndWatch`).
   */
  get coordination(): string {
    return `${this.prefix}coordination/`;
  }
  /** Prefix of the schedulers' membership keys. */
  get schedulers(): string {
    return `${this.coordination}schedulers/`;
  }
  /** Key of a scheduler's membership, attached to its lease. */
  scheduler(schedulerId: string): string {
    validateId('host', schedulerId, 'scheduler id');
    return `${this.schedulers}${schedulerId}`;
  }
  /** Key of the scheduler epoch: the member list that shards apps between schedulers. */
  get schedulerEpoch(): string {
    return `${this.coordination}scheduler-epoch`;
  }

  /**
   * Classifies a key: which record it holds and its ids; `undefined` for a key outside the
   * layout (another tool's), `{ kind: 'invalid' }` for a key under a known kind that no writer
   * makes (a wrong number of segments, an id that is not valid).
   */
  parse(key: string): ClusterKey | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return undefined;
    const dir = rest.slice(0, slash);
    const parts = rest.slice(slash + 1).split('/');
    const bad = (what: string): ClusterKey => ({
      kind: 'invalid',
      reason: `${key}: ${what}`,
    });
    const ids = (n: number): boolean => parts.length === n && parts.every(isValidId);
    switch (dir) {
      case 'hosts':
      case 'heartbeats':
      case 'host-control':
      case 'alloc':
        return ids(1)
          ? ({ kind: HOST_KINDS[dir], hostId: parts[0] as string } as ClusterKey)
          : bad('expected one valid host id after the prefix');
      case 'formations':
      case 'releases':
        return ids(2)
          ? {
              kind: dir === 'formations' ? 'formation' : 'release',
              app: parts[0] as string,
              release: parts[1] as string,
            }
          : bad('expected <app>/<release> with valid ids');
      case 'jobs':
      case 'job-status':
        return ids(2)
          ? {
              kind: dir === 'jobs' ? 'job' : 'job-status',
              hostId: parts[0] as string,
              jobId: parts[1] as string,
            }
          : bad('expected <host>/<job> with valid ids');
      case 'coordination':
        if (parts.length === 1 && parts[0] === 'scheduler-epoch')
          return { kind: 'scheduler-epoch' };
        if (parts[0] !== 'schedulers') return undefined;
        return parts.length === 2 && isValidId(parts[1] as string)
          ? { kind: 'scheduler', schedulerId: parts[1] as string }
          : bad('expected one valid scheduler id after coordination/schedulers/');
      default:
        return undefined;
    }
  }
}
