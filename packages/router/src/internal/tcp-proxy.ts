import net from 'node:net';
import type { RouterMetrics } from '../metrics.js';
import type { Backend, BackendSet } from './backend-set.js';

/** What a TCP listener needs from its router. */
export interface TcpPlane {
  backends(service: string): BackendSet | undefined;
  readonly maxRetries: number;
  readonly connectTimeoutMs: number;
  readonly metrics: RouterMetrics;
}

/**
 * Client bytes held while no backend connection is up yet: past this, the client is read no
 * more until one is (it sent on at full speed during a connect that hangs, up to
 * `connectTimeoutMs` for each backend tried, and all of it was held).
 */
const MAX_PENDING_BYTES = 64 * 1024;

/**
 * Forwards one client connection of a TCP route to a ready backend of `service`; a backend
 * that refuses (or does not answer in time) is counted as failed and the next one is tried,
 * before any client byte is forwarded.
 */
export function forwardTcp(client: net.Socket, service: string, plane: TcpPlane): void {
  const tried = new Set<Backend>();
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let closed = false;
  const onData = (chunk: Buffer): void => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    // The pipe set up on connect resumes it.
    if (pendingBytes >= MAX_PENDING_BYTES) client.pause();
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
  client.once('close', () => {
    closed = true;
  });
  const attempt = (): void => {
    if (closed) return;
    const set = plane.backends(service);
    const b = set?.pick(tried);
    if (set === undefined || b === undefined) {
      client.destroy();
      return;
    }
    set.acquire(b);
    const up = net.connect({ host: b.host, port: b.port, noDelay: true });
    up.setTimeout(plane.connectTimeoutMs, () => up.destroy(new Error('connect timeout')));
    let connected = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      set.release(b);
    };
    up.once('connect', () => {
      connected = true;
      up.setTimeout(0);
      set.succeeded(b);
      if (closed) {
        up.destroy();
        release();
        return;
      }
      client.removeListener('data', onData);
      for (const chunk of pending) up.write(chunk);
      pending.length = 0;
      pendingBytes = 0;
      up.pipe(client);
      client.pipe(up);
      client.once('close', () => up.destroy());
    });
    up.on('error', () => undefined);
    up.once('close', () => {
      release();
      if (connected) {
        client.destroy();
        return;
      }
      set.failed(b);
      tried.add(b);
      if (tried.size > plane.maxRetries) {
        client.destroy();
        return;
      }
      plane.metrics.retry(service);
      attempt();
    });
  };
  attempt();
}
