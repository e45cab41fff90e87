import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The router's Prometheus metrics, in a registry of its own (so two routers in one process
 * never clash): requests by route and status, upstream latency, retries, ejections, active
 * connections. Serve `await metrics.text()` at your `/metrics`.
 */
export class RouterMetrics {
  /** The prom-client registry holding the router's metrics. */
  readonly registry: Registry;
  readonly #requests: Counter<'route' | 'status'>;
  readonly #latency: Histogram<'service'>;
  readonly #retries: Counter<'service'>;
  readonly #ejections: Counter<'service'>;
  readonly #connections: Gauge<'protocol'>;
  readonly #reqChildren = new Map<string, { inc(): void }>();
  readonly #latChildren = new Map<string, { observe(v: number): void }>();

  /** @param registry - where to register (default: a new `Registry`). */
  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    this.#requests = new Counter({
      name: 'flotilla_router_requests_total',
      help: 'HTTP requests answered, by route (domain and path, or "none") and status code.',
      labelNames: ['route', 'status'],
      registers: [registry],
    });
    this.#latency = new Histogram({
      name: 'flotilla_router_upstream_duration_seconds',
      help: 'Time from sending a request to a backend to its response head, by service.',
      labelNames: ['service'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.#retries = new Counter({
      name: 'flotilla_router_retries_total',
      help: 'Requests or connections retried on another backend, by service.',
      labelNames: ['service'],
      registers: [registry],
    });
    this.#ejections = new Counter({
      name: 'flotilla_router_ejections_total',
      help: 'Backends ejected after repeated failures, by service.',
      labelNames: ['service'],
      registers: [registry],
    });
    this.#connections = new Gauge({
      name: 'flotilla_router_active_connections',
      help: 'Client connections open now, by protocol (http, https, tcp).',
      labelNames: ['protocol'],
      registers: [registry],
    });
  }

  /** Counts one answered request. */
  request(route: string, status: number): void {
    const key = `${route}\0${status}`;
    let c = this.#reqChildren.get(key);
    if (c === undefined) {
      c = this.#requests.labels(route, String(status));
      this.#reqChildren.set(key, c);
    }
    c.inc();
  }

  /** Records an upstream latency, in seconds. */
  upstreamLatency(service: string, seconds: number): void {
    let h = this.#latChildren.get(service);
    if (h === undefined) {
      h = this.#latency.labels(service);
      this.#latChildren.set(service, h);
    }
    h.observe(seconds);
  }

  /** Counts a retry. */
  retry(service: string): void {
    this.#retries.labels(service).inc();
  }

  /** Counts an ejection. */
  ejection(service: string): void {
    this.#ejections.labels(service).inc();
  }

  /** Moves the active connection gauge by `delta`. */
  connection(protocol: 'http' | 'https' | 'tcp', delta: number): void {
    this.#connections.labels(protocol).inc(delta);
  }

  /** The metrics in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
