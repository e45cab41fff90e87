/**
 * Where the cluster state lives in the store. Host agents, schedulers and the controller all
 * read and write these keys, so the layout is part of the API (see the README).
 *
 * | key                         | value        | written by                                        |
 * | --------------------------- | ------------ | ------------------------------------------------- |
 * | `hosts/<host>`              | HostRecord   | the host agent (up), operators (draining), the scheduler (down) |
 * | `heartbeats/<host>`         | time, leased | the host agent, attached to its lease             |
 * | `formations/<app>/<release>`| Formation    | the controller                                    |
 * | `jobs/<host>/<job>`         | JobRecord    | the scheduler (creates, asks to stop), the agent (state) |
 * | `alloc/<host>`              | HostAlloc    | the scheduler, in every commit that places on the host |
 */
export class ClusterKeys {
  /** The prefix every key starts with (default `'cluster/'`). */
  readonly prefix: string;

  constructor(prefix = 'cluster/') {
    this.prefix = prefix;
  }

  get hosts(): string {
    return `${this.prefix}hosts/`;
  }
  host(id: string): string {
    return `${this.hosts}${id}`;
  }
  get heartbeats(): string {
    return `${this.prefix}heartbeats/`;
  }
  heartbeat(id: string): string {
    return `${this.heartbeats}${id}`;
  }
  get formations(): string {
    return `${this.prefix}formations/`;
  }
  formation(app: string, release: string): string {
    return `${this.formations}${app}/${release}`;
  }
  get jobs(): string {
    return `${this.prefix}jobs/`;
  }
  /** Every job assigned to a host: what its agent watches. */
  jobsOf(hostId: string): string {
    return `${this.jobs}${hostId}/`;
  }
  job(hostId: string, jobId: string): string {
    return `${this.jobsOf(hostId)}${jobId}`;
  }
  get allocs(): string {
    return `${this.prefix}alloc/`;
  }
  alloc(hostId: string): string {
    return `${this.allocs}${hostId}`;
  }

  /** Classifies a key: which record it holds and its ids, or undefined. */
  parse(
    key: string,
  ):
    | { kind: 'host' | 'heartbeat' | 'alloc'; hostId: string }
    | { kind: 'formation'; app: string; release: string }
    | { kind: 'job'; hostId: string; jobId: string }
    | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return undefined;
    const kind = rest.slice(0, slash);
    const parts = rest.slice(slash + 1).split('/');
    if (parts.some((p) => p === '')) return undefined;
    switch (kind) {
      case 'hosts':
      case 'heartbeats':
      case 'alloc':
        return parts.length === 1
          ? {
              kind: kind === 'hosts' ? 'host' : kind === 'heartbeats' ? 'heartbeat' : 'alloc',
              hostId: parts[0] as string,
            }
          : undefined;
      case 'formations':
        return parts.length === 2
          ? { kind: 'formation', app: parts[0] as string, release: parts[1] as string }
          : undefined;
      case 'jobs':
        return parts.length === 2
          ? { kind: 'job', hostId: parts[0] as string, jobId: parts[1] as string }
          : undefined;
      default:
        return undefined;
    }
  }
}
