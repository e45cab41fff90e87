import net from 'node:net';

/**
 * The buffer every plain client connection reads into. One is enough: a read's bytes are
 * handed to their connection synchronously, before libuv reads again, and a connection copies
 * what it keeps past the call.
 */
const SHARED = Buffer.allocUnsafe(64 * 1024);

/** What Node's accepted sockets carry and this module relies on (see {@link readIntoShared}). */
type Accepted = net.Socket & {
  _handle?: { readStart?: unknown; readStop?: unknown } | null;
  _server?: net.Server | null;
  server?: net.Server | null;
};

/**
 * Moves an accepted TCP connection (from a server made with `pauseOnConnect`) to a socket that
 * reads into a shared buffer of the router's own (`onread`), without a stream: `onData` gets a
 * view of the bytes read, valid during the call only. Returns undefined, leaving `raw` as it
 * is, when this Node does not give the accepted socket's handle (then read `raw` as a stream).
 *
 * Why: Node has no option to accept connections with `onread`, and a read through the stream
 * (a new Buffer, `push`, a `data` event) cost a sixth of the router's CPU per small request.
 * The handle is given to a new `net.Socket` the way Node's own server does it, the server's
 * connection count moved with it, so `server.close()` and `getConnections()` still see it.
 */
export function readIntoShared(
  raw: net.Socket,
  onData: (view: Buffer) => void,
): net.Socket | undefined {
  const old = raw as Accepted;
  const handle = old._handle;
  if (
    handle === undefined ||
    handle === null ||
    typeof handle.readStart !== 'function' ||
    typeof handle.readStop !== 'function' ||
    old.destroyed ||
    !raw.isPaused()
  )
    return undefined;
  const server = old._server ?? null;
  const socket = new net.Socket({
    handle,
    allowHalfOpen: raw.allowHalfOpen,
    readable: true,
    writable: true,
    onread: {
      buffer: SHARED,
      callback: (n: number): boolean => {
        onData(SHARED.subarray(0, n));
        return true; // pause() stops reading
      },
    },
  } as net.SocketConstructorOpts & { handle: unknown }) as Accepted;
  // The old socket no longer owns the handle: it must never close it, nor count as the server's.
  old._handle = null;
  old._server = null;
  socket._server = server;
  old.server = null;
  socket.server = server;
  return socket;
}
