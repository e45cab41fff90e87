import http from 'node:http';

/** What a load run saw: every response counted, every error kept. */
export interface LoadResult {
  ok: number;
  statuses: Map<number, number>;
  errors: string[];
  byBackend: Map<string, number>;
}

/**
 * Sends requests from `concurrency` workers over keep-alive connections until `stop()` is
 * called; each worker awaits its response before sending the next. POSTs carry a small body.
 */
export function startLoad(
  port: number,
  options: { concurrency?: number; method?: 'GET' | 'POST' | 'mixed'; host?: string } = {},
): {
  result: LoadResult;
  stop(): Promise<LoadResult>;
  /** Resolves once `n` more responses have arrived. */
  after(n: number): Promise<void>;
} {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency ?? 10 });
  const result: LoadResult = { ok: 0, statuses: new Map(), errors: [], byBackend: new Map() };
  let stopped = false;
  let total = 0;
  const waiters: { at: number; resolve: () => void }[] = [];
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const post = options.method === 'POST' || (options.method === 'mixed' && i % 2 === 1);
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: post ? 'POST' : 'GET',
          path: `/load/${i}`,
          agent,
          headers: { host: options.host ?? 'demo.localhost' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            result.statuses.set(status, (result.statuses.get(status) ?? 0) + 1);
            if (status === 200) result.ok++;
            else
              result.errors.push(
                `status ${status}: ${Buffer.concat(chunks).toString().slice(0, 200)}`,
              );
            const b = String(res.headers['x-backend'] ?? '?');
            result.byBackend.set(b, (result.byBackend.get(b) ?? 0) + 1);
            resolve();
          });
          res.on('error', (err) => {
            result.errors.push(`response error: ${err.message}`);
            resolve();
          });
        },
      );
      req.on('error', (err) => {
        result.errors.push(`request error: ${err.message}`);
        resolve();
      });
      req.end(post ? `payload-${i}` : undefined);
    });
  const workers = Array.from({ length: options.concurrency ?? 10 }, async (_, w) => {
    let i = w;
    while (!stopped) {
      await one(i);
      i += options.concurrency ?? 10;
      total++;
      for (const waiter of waiters.filter((x) => total >= x.at)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  });
  return {
    result,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      agent.destroy();
      return result;
    },
    after(n) {
      return new Promise((resolve) => waiters.push({ at: total + n, resolve }));
    },
  };
}
