// git smart HTTP through `git http-backend`: a client that stops sending mid-push (gone without
// closing its connection) is dropped, so its app's pushes are not held for good.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@flotilla/core';
import { serveGit } from './http-backend.js';
import { GitRepos } from './repos.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('serveGit', () => {
  it('drops a push whose client sends nothing more mid-body, and ends the backend', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-git-backend-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const hook = join(dir, 'hook.mjs');
    await writeFile(hook, 'process.exit(0);\n');
    const root = join(dir, 'git');
    await new GitRepos(root, hook).ensure('demo', '1');

    const served: Promise<void>[] = [];
    const server: Server = createServer((req, res) => {
      served.push(
        serveGit(req, res, {
          projectRoot: root,
          pathInfo: '/demo.git/git-receive-pack',
          env: {},
          logger: silentLogger,
          bodyIdleTimeoutMs: 300,
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise((r) => server.close(r)));
    const { port } = server.address() as AddressInfo;

    const socket = connect(port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await once(socket, 'connect');
    // The start of a receive-pack request, then silence (the socket stays open).
    socket.write(
      'POST /git/demo.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        'Content-Type: application/x-git-receive-pack-request\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n4\r\n0014\r\n',
    );
    socket.resume();
    await once(socket, 'close');
    expect(served).toHaveLength(1);
    await served[0];
  });

  it('keeps a push whose client sends slowly but steadily, past the idle timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-git-backend-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const hook = join(dir, 'hook.mjs');
    await writeFile(hook, 'process.exit(0);\n');
    const root = join(dir, 'git');
    await new GitRepos(root, hook).ensure('demo', '1');
    const server: Server = createServer((req, res) => {
      void serveGit(req, res, {
        projectRoot: root,
        pathInfo: '/demo.git/git-receive-pack',
        env: {},
        logger: silentLogger,
        bodyIdleTimeoutMs: 2000,
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise((r) => server.close(r)));
    const { port } = server.address() as AddressInfo;

    const socket = connect(port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await once(socket, 'connect');
    let reply = '';
    const replied = new Promise<void>((resolve, reject) => {
      socket.on('data', (b: Buffer) => {
        reply += b.toString('latin1');
        if (reply.endsWith('\r\n0\r\n\r\n')) resolve();
      });
      socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(reply)}`)));
    });
    socket.write(
      'POST /git/demo.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n' +
        'Content-Type: application/x-git-receive-pack-request\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n',
    );
    // A flush packet (an empty push), a byte every 500 ms: 2.5 s in all, past the 2 s idle
    // timeout, each gap a quarter of it. Writer and server share this event loop: with gaps of
    // half the timeout (150 of 300 ms), a stall of 150 ms on a loaded machine can let both timers
    // come due in one turn, the server's firing before it has read the byte.
    for (const byte of '0000') {
      await new Promise((r) => setTimeout(r, 500));
      socket.write(`1\r\n${byte}\r\n`);
    }
    await new Promise((r) => setTimeout(r, 500));
    socket.write('0\r\n\r\n');
    await replied;
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
  });
});
