import net from 'node:net';
import type { Backend } from './backend-set.js';

/** Options of {@link UpstreamPool}. */
export interface UpstreamPoolOptions {
  /** Most idle keep-alive connections kept per backend. */
  readonly maxIdlePerBackend: number;
  /** An idle connection is closed after this long (below the backends' keep-alive timeout). */
  readonly idleTimeoutMs: number;
  /** A connect that takes longer fails (and may be retried elsewhere). */
  readonly connectTimeoutMs: number;
}

const noop = (): void => undefined;

/** Keep-alive connections to backends, reused newest first (LIFO). */
export class UpstreamPool {
  readonly #idle = new Map<string, net.Socket[]>();
  #closed = false;

  constructor(readonly options: UpstreamPoolOptions) {}

  /** An idle connection to `b`, if one is alive. */
  take(b: Backend): net.Socket | undefined {
    const list = this.#idle.get(b.addr);
    if (list === undefined) return undefined;
    for (;;) {
      const s = list.pop();
      if (s === undefined) return undefined;
      s.removeListener('close', onIdleClose);
      s.removeListener('data', onIdleData);
      if (s.destroyed || !s.writable) continue;
      s.setTimeout(0);
      return s;
    }
  }

  /** Opens a new connection to `b`. */
  connect(b: Backend): net.Socket {
    const s = net.connect({ host: b.host, port: b.port, noDelay: true });
    s.setTimeout(this.options.connectTimeoutMs, () => s.destroy(new Error('connect timeout')));
    s.once('connect', () => s.setTimeout(0));
    return s;
  }

  /** Gives a connection back after a complete exchange, or closes it when the pool is full. */
  put(b: Backend, s: net.Socket): void {
    if (this.#closed || s.destroyed || !s.writable || !b.ready) {
      s.destroy();
      return;
    }
    let list = this.#idle.get(b.addr);
    if (list === undefined) {
      list = [];
      this.#idle.set(b.addr, list);
    }
    if (list.length >= this.options.maxIdlePerBackend) {
      s.destroy();
      return;
    }
    s.removeAllListeners('data');
    s.removeAllListeners('end');
    s.removeAllListeners('error');
    s.removeAllListeners('drain');
    s.removeAllListeners('close');
    s.removeAllListeners('timeout');
    s.on('error', noop);
    s.once('close', onIdleClose);
    s.on('data', onIdleData);
    (s as SocketWithList).flotillaIdle = list;
    s.setTimeout(this.options.idleTimeoutMs, () => s.destroy());
    if (s.isPaused()) s.resume();
    list.push(s);
  }

  /** Closes the idle connections of one backend (it left or turned unready). */
  retire(addr: string): void {
    const list = this.#idle.get(addr);
    if (list === undefined) return;
    this.#idle.delete(addr);
    for (const s of list) s.destroy();
  }

  /** Closes every idle connection; later puts close theirs. */
  close(): void {
    this.#closed = true;
    for (const addr of [...this.#idle.keys()]) this.retire(addr);
  }
}

type SocketWithList = net.Socket & { flotillaIdle?: net.Socket[] };

function onIdleClose(this: net.Socket): void {
  const list = (this as SocketWithList).flotillaIdle;
  if (list === undefined) return;
  const i = list.indexOf(this);
  if (i !== -1) list.splice(i, 1);
}

function onIdleData(this: net.Socket): void {
  // Bytes on an idle connection: the backend is out of step; never reuse it.
  this.destroy();
}
