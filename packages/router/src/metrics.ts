import { Counter, Gauge, Registry } from 'prom-client';
import { FastHistogram } from './internal/fast-histogram.js';

/**
 * The router's Prometheus metrics, in a registry of its own (so two routers in one process
 * never clash): requests by route and status, upstream latency, retries, ejections, active
 * connections. Serve `await metrics.text()` at your `/metrics`.
 */
export class RouterMetrics {
  /** The prom-client registry holding the router's metrics. */
  readonly registry: Registry;
  readonly #requests: Counter<'route' | 'status'>;
  readonly #latency: FastHistogram;
  readonly #retries: Counter<'service'>;
  readonly #ejections: Counter<'service'>;
  readonly #connections: Gauge<'protocol'>;
  /** Requests counted since the last scrape, by route, then status (flushed on collect). */
  readonly #pendingRequests = new Map<string, Map<number, { n: number }>>();

  /** @param registry - where to register (default: a new `Registry`). */
  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    this.#requests = new Counter({
      name: 'flotilla_router_requests_total',
      help: 'HTTP requests answered, by route (domain and path, or "none") and status code.',
      labelNames: ['route', 'status'],
      registers: [registry],
      collect: () => this.#flushRequests(),
    });
    this.#latency = new FastHistogram(
      'flotilla_router_upstream_duration_seconds',
      'Time from sending a request to a backend to its response head, by service.',
      'service',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registry,
    );
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

  // The data plane only bumps plain numbers; prom-client is updated when scraped, which keeps
  // label hashing off the per-request path.

  // The count the last request went to: most requests in a row have the same route and status.
  #lastRoute = '';
  #lastStatus = 0;
  #lastCount: { n: number } | undefined;

  /** Counts one answered request. */
  request(route: string, status: number): void {
    if (route === this.#lastRoute && status === this.#lastStatus && this.#lastCount !== undefined) {
      this.#lastCount.n++;
      return;
    }
    let byStatus = this.#pendingRequests.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#pendingRequests.set(route, byStatus);
    }
    let p = byStatus.get(status);
    if (p !== undefined) p.n++;
    else byStatus.set(status, (p = { n: 1 }));
    this.#lastRoute = route;
    this.#lastStatus = status;
    this.#lastCount = p;
  }

  /** Records an upstream latency, in seconds. */
  upstreamLatency(service: string, seconds: number): void {
    this.#latency.observe(service, seconds);
  }

  #flushRequests(): void {
    for (const [route, byStatus] of this.#pendingRequests) {
      for (const [status, p] of byStatus) {
        if (p.n === 0) continue;
        this.#requests.labels(route, String(status)).inc(p.n);
        p.n = 0;
      }
    }
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
