import net from 'node:net';
import { RouterError } from '../errors.js';
import type { TcpRoute } from '../route.js';
import { forwardTcp, type TcpPlane } from './tcp-proxy.js';

/** What the TCP listeners need from their router. */
export interface TcpListenersOptions {
  /** The address every listener binds. */
  readonly host: string;
  readonly plane: TcpPlane;
  /** Whether the router is closing (new connections are refused). */
  readonly closing: () => boolean;
  /** Reports a port that cannot be bound. */
  readonly warn: (err: Error) => void;
}

type TcpServer = net.Server & { service: string };

/** One listener per TCP route port, opened and closed as routes come and go. */
export class TcpListeners {
  readonly #servers = new Map<number, TcpServer>();
  readonly #sockets = new Set<net.Socket>();

  constructor(readonly options: TcpListenersOptions) {}

  /** Makes the listeners match `routes` (by port); resolves once new ones are bound or failed. */
  async reconcile(routes: ReadonlyMap<number, TcpRoute & { readonly id: string }>): Promise<void> {
    for (const [port, server] of this.#servers) {
      if (!routes.has(port)) {
        this.#servers.delete(port);
        server.close();
      }
    }
    const binds: Promise<void>[] = [];
    for (const [port, route] of routes) {
      const existing = this.#servers.get(port);
      if (existing !== undefined) {
        existing.service = route.service;
        continue;
      }
      binds.push(this.#open(port, route));
    }
    await Promise.all(binds);
  }

  #open(port: number, route: TcpRoute & { readonly id: string }): Promise<void> {
    const { host, plane } = this.options;
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
      if (this.options.closing()) {
        s.destroy();
        return;
      }
      this.#sockets.add(s);
      plane.metrics.connection('tcp', 1);
      s.once('close', () => {
        this.#sockets.delete(s);
        plane.metrics.connection('tcp', -1);
      });
      forwardTcp(s, server.service, plane);
    }) as TcpServer;
    server.service = route.service;
    this.#servers.set(port, server);
    return new Promise<void>((resolve) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        this.#servers.delete(port);
        this.options.warn(
          new RouterError(
            'FLOTILLA_ROUTER_LISTEN_FAILED',
            `tcp route ${route.id}: cannot listen on ${host}:${port} (${err.code ?? err.message}): free the port or change the route`,
            { cause: err },
          ),
        );
        resolve();
      });
      server.listen(port, host, () => resolve());
    });
  }

  /** Stops listening; open connections go on. Resolves once the listeners closed. */
  async stopListening(): Promise<void> {
    const closed = [...this.#servers.values()].map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    this.#servers.clear();
    await Promise.all(closed);
  }

  /** Cuts every forwarded connection. */
  destroyConnections(): void {
    for (const s of this.#sockets) s.destroy();
  }
}
