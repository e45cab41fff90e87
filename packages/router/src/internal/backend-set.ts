import type { ServiceInstance } from '@flotilla/discovery';

/** How a backend is chosen among the ready ones. */
export type Balancing = 'p2c' | 'round-robin' | 'least-connections';

/** One instance of a service, as the data plane sees it. */
export class Backend {
  /** Requests (or TCP connections) in flight to it. */
  inflight = 0;
  /** Consecutive failures (connect refused, reset before a response). */
  failures = 0;
  /** How many times in a row it was ejected (the back-off doubles with each). */
  ejections = 0;
  /** Clock time until which it gets no new requests, after repeated failures. */
  ejectedUntil = 0;
  /** Whether discovery lists it as ready. */
  ready: boolean;
  /** Whether discovery no longer lists it at all. */
  gone = false;
  readonly host: string;
  readonly port: number;

  constructor(
    readonly service: string,
    readonly id: string,
    readonly addr: string,
    ready: boolean,
  ) {
    this.ready = ready;
    const colon = addr.lastIndexOf(':');
    this.host = addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    this.port = Number(addr.slice(colon + 1));
  }

  /** Whether it may take new requests now. */
  usable(now: number): boolean {
    return this.ready && !this.gone && this.ejectedUntil <= now;
  }
}

/** Options of {@link BackendSet}. */
export interface BackendSetOptions {
  readonly balancing: Balancing;
  /** Consecutive failures that eject a backend. */
  readonly ejectAfter: number;
  /** First ejection period, doubling up to `maxEjectMs`. */
  readonly ejectMs: number;
  readonly maxEjectMs: number;
  readonly now: () => number;
  /** A backend stopped being ready (or left) and has nothing in flight any more. */
  readonly onDrained: (backend: Backend) => void;
  /** A backend became ready again (its drained record must go). */
  readonly onReady: (backend: Backend) => void;
  /** A backend was ejected. */
  readonly onEject: (backend: Backend, ms: number) => void;
  /** A backend's address changed or it left: its pooled connections must close. */
  readonly onRetire: (backend: Backend) => void;
}

/** The instances of one service: readiness from discovery, balancing, passive health, drain. */
export class BackendSet {
  readonly #byId = new Map<string, Backend>();
  #ready: Backend[] = [];
  #rr = 0;
  /** Whether the first discovery snapshot arrived. */
  synced = false;

  constructor(
    readonly service: string,
    readonly options: BackendSetOptions,
  ) {}

  /** A backend by instance id, if known. */
  get(id: string): Backend | undefined {
    return this.#byId.get(id);
  }

  /** Every known backend (ready, draining or gone-but-busy). */
  all(): IterableIterator<Backend> {
    return this.#byId.values();
  }

  /** Applies a full discovery snapshot. */
  reset(instances: readonly ServiceInstance[]): void {
    const seen = new Set<string>();
    for (const inst of instances) {
      seen.add(inst.id);
      this.upsert(inst);
    }
    for (const b of [...this.#byId.values()]) if (!seen.has(b.id)) this.remove(b.id);
    this.synced = true;
  }

  /** Applies an instance that appeared or changed. */
  upsert(inst: ServiceInstance): void {
    let b = this.#byId.get(inst.id);
    if (b !== undefined && b.addr !== inst.addr) {
      // Same id, new address: the old one drains like a removed instance.
      this.remove(inst.id);
      b = undefined;
    }
    if (b === undefined) {
      b = new Backend(this.service, inst.id, inst.addr, inst.ready);
      this.#byId.set(inst.id, b);
      if (inst.ready) this.options.onReady(b);
      else this.options.onDrained(b);
      this.#rebuild();
      return;
    }
    if (b.ready === inst.ready && !b.gone) return;
    const wasReady = b.ready;
    b.ready = inst.ready;
    b.gone = false;
    this.#rebuild();
    if (inst.ready && !wasReady) this.options.onReady(b);
    else if (!inst.ready && b.inflight === 0) this.options.onDrained(b);
  }

  /** Applies an instance that left discovery. */
  remove(id: string): void {
    const b = this.#byId.get(id);
    if (b === undefined) return;
    b.gone = true;
    b.ready = false;
    this.#byId.delete(id);
    this.#rebuild();
    this.options.onRetire(b);
    if (b.inflight === 0) this.options.onDrained(b);
  }

  #rebuild(): void {
    this.#ready = [...this.#byId.values()].filter((b) => b.ready);
  }

  /** Whether any backend is ready (ejected or not). */
  get hasReady(): boolean {
    return this.#ready.length > 0;
  }

  /**
   * Chooses a backend for a new request, skipping `exclude` (already tried). Ejected backends
   * are used only when every other ready one is ejected too. `now` is the clock, when the
   * caller has it.
   */
  pick(exclude?: ReadonlySet<Backend>, now = this.options.now()): Backend | undefined {
    const ready = this.#ready;
    if (ready.length === 1 && exclude === undefined) {
      // One backend: it, ejected or not (an ejected one is used when no other is usable).
      return ready[0];
    }
    let list: Backend[] = [];
    for (const b of ready)
      if (b.usable(now) && (exclude === undefined || !exclude.has(b))) list.push(b);
    if (list.length === 0) {
      list = ready.filter((b) => exclude === undefined || !exclude.has(b));
      if (list.length === 0) return undefined;
    }
    const n = list.length;
    if (n === 1) return list[0];
    switch (this.options.balancing) {
      case 'round-robin':
        return list[this.#rr++ % n];
      case 'least-connections': {
        let best = list[this.#rr++ % n] as Backend;
        for (const b of list) if (b.inflight < best.inflight) best = b;
        return best;
      }
      default: {
        const i = Math.floor(Math.random() * n);
        let j = Math.floor(Math.random() * (n - 1));
        if (j >= i) j++;
        const a = list[i] as Backend;
        const b = list[j] as Backend;
        return b.inflight < a.inflight ? b : a;
      }
    }
  }

  /** Counts a request (or connection) going to `b`. */
  acquire(b: Backend): void {
    b.inflight++;
  }

  /** Ends a request to `b`; a draining backend with nothing left in flight is drained. */
  release(b: Backend): void {
    b.inflight--;
    if (b.inflight === 0 && !b.ready) this.options.onDrained(b);
  }

  /** Records a failure to reach `b`; ejects it after `ejectAfter` in a row. */
  failed(b: Backend): void {
    b.failures++;
    if (b.failures >= this.options.ejectAfter && b.ejectedUntil <= this.options.now()) {
      const ms = Math.min(this.options.ejectMs * 2 ** b.ejections, this.options.maxEjectMs);
      b.ejections++;
      b.failures = 0;
      b.ejectedUntil = this.options.now() + ms;
      this.options.onEject(b, ms);
    }
  }

  /** Records a success: the failure count and ejection back-off start over. */
  succeeded(b: Backend): void {
    if (b.failures !== 0) b.failures = 0;
    if (b.ejections !== 0 && b.ejectedUntil <= this.options.now()) b.ejections = 0;
  }
}
