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
  /** The clock, in ms. */
  readonly now: () => number;
}

/**
 * Who receives an upstream connection's events: the exchange using it, or the pool.
 *
 * Upstream connections read into a buffer of their own (`net.connect`'s `onread`), without a
 * stream and a new Buffer per read: `upData` gets a view of that buffer, valid during the call
 * only. An owner that keeps a reference to it past the call (a client write that did not finish
 * at once, a partial head kept for the next read) returns true, and the connection reads into
 * a new buffer from then on.
 */
export interface UpstreamOwner {
  upConnect(): void;
  upData(chunk: Buffer): boolean;
  upEnd(): void;
  upClose(): void;
  upDrain(): void;
}

/** An upstream connection: its listeners are attached once and dispatch to its owner. */
export type UpSocket = net.Socket & {
  owner: UpstreamOwner | null;
  /** Its owner while in the pool (for one idle list), made once. */
  idle: (UpstreamOwner & { readonly list: readonly UpSocket[] }) | undefined;
  idleSince: number;
  connectedAt: number;
};

/** The owner of idle connections: any byte or close takes them out of the pool. */
class Idle implements UpstreamOwner {
  constructor(
    readonly s: UpSocket,
    readonly list: UpSocket[],
  ) {}
  upConnect(): void {
    // idle connections are connected already
  }
  upData(): boolean {
    // Bytes on an idle connection: the backend is out of step; never reuse it.
    this.s.destroy();
    return false;
  }
  upEnd(): void {
    this.s.destroy();
  }
  upClose(): void {
    const i = this.list.indexOf(this.s);
    if (i !== -1) this.list.splice(i, 1);
  }
  upDrain(): void {
    // nothing is written to an idle connection
  }
}

/** First read buffer of an upstream connection. */
const READ_SIZE = 16 * 1024;
/** Read buffer of a connection that filled its first one (a large body): fewer system calls. */
const BULK_READ_SIZE = 64 * 1024;

/** Keep-alive connections to backends, reused newest first (LIFO). */
export class UpstreamPool {
  readonly #idle = new Map<string, UpSocket[]>();
  #closed = false;

  constructor(readonly options: UpstreamPoolOptions) {}

  /** An idle connection to `b`, if one is alive, now owned by `owner`. */
  take(b: Backend, owner: UpstreamOwner): UpSocket | undefined {
    const list = this.#idle.get(b.addr);
    if (list === undefined) return undefined;
    for (;;) {
      const s = list.pop();
      if (s === undefined) return undefined;
      if (s.destroyed || !s.writable) continue;
      s.owner = owner;
      return s;
    }
  }

  /** Opens a new connection to `b`, owned by `owner` (its `upConnect` is called once connected). */
  connect(b: Backend, owner: UpstreamOwner): UpSocket {
    let buf = Buffer.allocUnsafe(READ_SIZE);
    const s = net.connect({
      host: b.host,
      port: b.port,
      noDelay: true,
      onread: {
        buffer: () => buf,
        // Returns true: reading goes on (pause() stops it).
        callback: (n: number): boolean => {
          const owner = s.owner;
          if (owner === null) return true;
          // The owner kept the bytes: read into a new buffer from now on.
          if (owner.upData(buf.subarray(0, n)))
            buf = Buffer.allocUnsafe(n === buf.length ? BULK_READ_SIZE : buf.length);
          else if (n === buf.length && n < BULK_READ_SIZE) buf = Buffer.allocUnsafe(BULK_READ_SIZE);
          return true;
        },
      },
    }) as UpSocket;
    s.owner = owner;
    s.idle = undefined;
    s.idleSince = 0;
    s.connectedAt = 0;
    const timer = setTimeout(
      () => s.destroy(new Error('connect timeout')),
      this.options.connectTimeoutMs,
    );
    s.once('connect', () => {
      clearTimeout(timer);
      s.connectedAt = this.options.now();
      s.owner?.upConnect();
    });
    s.once('close', () => clearTimeout(timer));
    s.on('end', () => s.owner?.upEnd());
    s.on('close', () => s.owner?.upClose());
    s.on('drain', () => s.owner?.upDrain());
    s.on('error', () => undefined); // 'close' follows
    return s;
  }

  /**
   * Gives a connection back after a complete exchange (at `now`, by the pool's clock), or
   * closes it when the pool is full.
   */
  put(b: Backend, s: UpSocket, now = this.options.now()): void {
    if (this.#closed || s.destroyed || !s.writable || !b.ready) {
      s.owner = null;
      s.destroy();
      return;
    }
    let list = this.#idle.get(b.addr);
    if (list === undefined) {
      list = [];
      this.#idle.set(b.addr, list);
    }
    if (list.length >= this.options.maxIdlePerBackend) {
      s.owner = null;
      s.destroy();
      return;
    }
    if (s.idle?.list !== list) s.idle = new Idle(s, list);
    s.owner = s.idle;
    s.idleSince = now;
    if (s.isPaused()) s.resume();
    list.push(s);
  }

  /** Closes idle connections older than the idle timeout; called about once a second. */
  sweep(now: number): void {
    const limit = now - this.options.idleTimeoutMs;
    for (const list of this.#idle.values()) {
      // Oldest first: the list is LIFO, so the stale ones are at the front.
      for (let s = list[0]; s !== undefined && s.idleSince <= limit; s = list[0]) {
        list.shift();
        s.destroy();
      }
    }
  }

  /** Closes the idle connections of one backend (it left or turned unready). */
  retire(addr: string): void {
    const list = this.#idle.get(addr);
    if (list === undefined) return;
    this.#idle.delete(addr);
    for (const s of list.splice(0)) s.destroy();
  }

  /** Closes every idle connection; later puts close theirs. */
  close(): void {
    this.#closed = true;
    for (const addr of [...this.#idle.keys()]) this.retire(addr);
  }
}
