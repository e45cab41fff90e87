import type { Registry } from 'prom-client';

interface Series {
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram with one label, registered in a prom-client registry, whose
 * `observe` is a bucket search and three additions (prom-client's own hashes its labels on
 * every call, which shows on the router's per-request path).
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string,
    readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Records one value for a label value. */
  observe(label: string, value: number): void {
    let s = this.#series.get(label);
    if (s === undefined) {
      s = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
      this.#series.set(label, s);
    }
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (value <= (b[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  /** prom-client's export shape: cumulative buckets, sum and count per series. */
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] =
      [];
    for (const [label, s] of this.#series) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.counts[i] as number;
        values.push({
          labels: { le, [this.labelName]: label },
          value: acc,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push({
        labels: { le: '+Inf', [this.labelName]: label },
        value: s.count,
        metricName: `${this.name}_bucket`,
      });
      values.push({
        labels: { [this.labelName]: label },
        value: s.sum,
        metricName: `${this.name}_sum`,
      });
      values.push({
        labels: { [this.labelName]: label },
        value: s.count,
        metricName: `${this.name}_count`,
      });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  /** Forgets every observation. */
  reset(): void {
    this.#series.clear();
  }
}
