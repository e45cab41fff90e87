// The PortAllocator against real sockets on loopback: ports other processes listen on are skipped.
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HostError, HostErrorCodes } from './errors.js';
import { PortAllocator } from './ports.js';
import { claimPortRange } from '../../../test/support/port-slots.js';

const servers: Server[] = [];

/** A foreign listener on `port`; undefined if the port cannot be bound. */
function listen(port: number, host: string): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.destroy());
    s.once('error', () => resolve(undefined));
    s.listen(port, host, () => {
      servers.push(s);
      resolve(s);
    });
  });
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('PortAllocator', () => {
  it.each(['127.0.0.1', '0.0.0.0', '::1'])(
    'skips a port another process listens on (%s)',
    async (host) => {
      const range = await claimPortRange(3);
      expect(await listen(range.from, host)).toBeDefined();
      const ports = new PortAllocator(range, { host: '127.0.0.1' });
      expect(await ports.allocate('web.1')).toBe(range.from + 1);
      expect(await ports.allocate('web.2')).toBe(range.from + 2);
      // The same job asks again: its port, not another.
      expect(await ports.allocate('web.1')).toBe(range.from + 1);
    },
  );

  it('fails with FLOTILLA_HOST_NO_PORT when every free port is held by jobs or other processes, and recovers once one is free', async () => {
    const range = await claimPortRange(3);
    const foreign = await listen(range.from, '127.0.0.1');
    await listen(range.from + 2, '127.0.0.1');
    const ports = new PortAllocator(range);
    expect(await ports.allocate('web.1')).toBe(range.from + 1);
    const err = await ports.allocate('web.2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as HostError).code).toBe(HostErrorCodes.NO_PORT);
    expect((err as HostError).message).toContain('1 by jobs of this agent, 2 by other processes');
    // Nothing half-held: once the foreign process goes, the port is handed out.
    await new Promise((r) => foreign?.close(r));
    expect(await ports.allocate('web.2')).toBe(range.from);
  });

  it('hands concurrent allocations distinct ports', async () => {
    const range = await claimPortRange(8);
    await listen(range.from + 1, '127.0.0.1');
    const ports = new PortAllocator(range);
    const got = await Promise.all(
      ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'a'].map((id) => ports.allocate(id)),
    );
    expect(new Set(got.slice(0, 7)).size).toBe(7);
    expect(got[7]).toBe(got[0]);
    expect(got).not.toContain(range.from + 1);
  });

  it('gives a port back on release, and holds nothing after an aborted allocation', async () => {
    const range = await claimPortRange(1);
    const ports = new PortAllocator(range);
    const err = await ports
      .allocate('web.1', { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect((err as HostError).code).toBe(HostErrorCodes.CLOSED);
    expect(await ports.allocate('web.2')).toBe(range.from);
    await expect(ports.allocate('web.3')).rejects.toMatchObject({ code: HostErrorCodes.NO_PORT });
    ports.release('web.2');
    expect(await ports.allocate('web.3')).toBe(range.from);
  });

  it("a release while the job's allocation is in flight cancels it: the port is not kept", async () => {
    const range = await claimPortRange(1);
    const ports = new PortAllocator(range);
    const first = ports.allocate('web.1');
    ports.release('web.1');
    await expect(first).rejects.toMatchObject({ code: HostErrorCodes.CLOSED });
    // The one port of the range is free for another job, and for web.1 asking anew.
    expect(await ports.allocate('web.2')).toBe(range.from);
    ports.release('web.2');
    expect(await ports.allocate('web.1')).toBe(range.from);
  });

  it('refuses a bad range or host with FLOTILLA_HOST_INVALID_OPTIONS', () => {
    for (const bad of [{ from: 80, to: 90 }, { from: 3000, to: 2000 }, null])
      expect(() => new PortAllocator(bad as never)).toThrow(
        expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS }),
      );
    expect(() => new PortAllocator({ from: 3000, to: 3001 }, { host: '' })).toThrow(
      expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS, path: 'host' }),
    );
  });
});
