import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactCache, type SlugArtifact } from './artifact-cache.js';
import { HostError, HostErrorCodes } from './errors.js';

const TOKEN = 's3cret-agent-token';
const SIZE = 256 * 1024;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Rejection of `p` as a HostError, failing the test if it resolves or throws something else. */
async function refusal(p: Promise<unknown>): Promise<HostError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  return err as HostError;
}

describe('ArtifactCache', () => {
  let dir: string;
  let cacheDir: string;
  let body: Buffer;
  let artifact: SlugArtifact;
  let server: Server | undefined;
  let base: string;
  /** Every request the server saw, in order. */
  let seen: { url: string; authorization: string | undefined }[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-artifact-cache-'));
    cacheDir = join(dir, 'cache');
    body = randomBytes(SIZE);
    artifact = { url: 'placeholder', sha256: sha256(body), size: body.length };
    seen = [];
  });

  afterEach(async () => {
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
      server = undefined;
    }
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts a loopback server answering with `handler`, recording each request. */
  async function serve(handler: RequestListener): Promise<string> {
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
      handler(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return base;
  }

  /** Answers a bearer-authenticated GET with `payload` (default: the artifact). */
  function authorized(payload?: (res: ServerResponse) => void): RequestListener {
    return (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401).end();
        return;
      }
      if (payload !== undefined) payload(res);
      else res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    };
  }

  /** The cache dir's files, but for the lock file naming this process. */
  async function cacheContents(): Promise<string[]> {
    return (await readdir(cacheDir).catch(() => [])).filter((n) => n !== '.lock').sort();
  }

  it('copies a file:// artifact into the cache, named by its digest', async () => {
    const src = join(dir, 'app.tgz');
    await writeFile(src, body);
    const cache = new ArtifactCache({ dir: cacheDir });
    const path = await cache.get({ ...artifact, url: pathToFileURL(src).href });
    expect(path).toBe(join(cacheDir, `${artifact.sha256}.slug`));
    expect((await readFile(path)).equals(body)).toBe(true);
    expect(await cacheContents()).toEqual([`${artifact.sha256}.slug`]);
  });

  it('refuses a file:// artifact whose digest does not match, and a missing one', async () => {
    const src = join(dir, 'app.tgz');
    await writeFile(src, randomBytes(SIZE));
    const cache = new ArtifactCache({ dir: cacheDir });
    const corrupt = await refusal(cache.get({ ...artifact, url: pathToFileURL(src).href }));
    expect(corrupt.code).toBe(HostErrorCodes.ARTIFACT_CORRUPT);
    const missing = await refusal(
      cache.get({ ...artifact, url: pathToFileURL(join(dir, 'nope.tgz')).href }),
    );
    expect(missing.code).toBe(HostErrorCodes.ARTIFACT_FETCH);
    expect(await cacheContents()).toEqual([]);
  });

  it('fetches over http with the bearer token', async () => {
    const url = `${await serve(authorized())}/artifacts/app.tgz`;
    const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
    const path = await cache.get({ ...artifact, url });
    expect((await readFile(path)).equals(body)).toBe(true);
    expect(seen).toEqual([{ url: '/artifacts/app.tgz', authorization: `Bearer ${TOKEN}` }]);
  });

  it('with urlPrefixes, refuses any other URL without reading it or sending the token', async () => {
    await mkdir(join(dir, 'ok'));
    await writeFile(join(dir, 'ok', 'app.tgz'), body);
    await writeFile(join(dir, 'secret.tgz'), body);
    const served = await serve(authorized());
    const cache = new ArtifactCache({
      dir: cacheDir,
      token: TOKEN,
      urlPrefixes: [`${pathToFileURL(join(dir, 'ok')).href}/`, `${served}/artifacts/`],
    });
    const outside = [
      'file:///etc/shadow',
      pathToFileURL(join(dir, 'secret.tgz')).href,
      `${pathToFileURL(join(dir, 'ok')).href}/../secret.tgz`,
      `${pathToFileURL(join(dir, 'ok')).href}/%2e%2e/secret.tgz`,
      `${pathToFileURL(join(dir, 'ok')).href}x/app.tgz`,
      `${served}/other/app.tgz`,
      `${served}/artifacts/../other/app.tgz`,
      'http://169.254.169.254/latest/meta-data/',
    ];
    for (const url of outside) {
      const err = await refusal(cache.get({ ...artifact, url }));
      expect(err.code).toBe(HostErrorCodes.ARTIFACT_INVALID);
      expect(err.message).toMatch(/urlPrefixes/);
    }
    expect(seen).toEqual([]);
    expect(await cacheContents()).toEqual([]);
    const fromFile = await cache.get({
      ...artifact,
      url: pathToFileURL(join(dir, 'ok', 'app.tgz')).href,
    });
    expect((await readFile(fromFile)).equals(body)).toBe(true);
    await rm(fromFile);
    await cache.get({ ...artifact, url: `${served}/artifacts/app.tgz` });
    expect(seen).toEqual([{ url: '/artifacts/app.tgz', authorization: `Bearer ${TOKEN}` }]);
  });

  it('refuses urlPrefixes that are not URLs ending in "/"', () => {
    for (const urlPrefixes of [['https://ctl'], ['ftp://x/'], ['not a url/'], 'file:///x/']) {
      expect(
        () => new ArtifactCache({ dir: cacheDir, urlPrefixes: urlPrefixes as string[] }),
      ).toThrow(expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS }));
    }
  });

  it('without the token, a 401 is a fetch error that says to check the token', async () => {
    const url = `${await serve(authorized())}/a.tgz`;
    const err = await refusal(new ArtifactCache({ dir: cacheDir }).get({ ...artifact, url }));
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_FETCH);
    expect(err.message).toMatch(/401.*token/);
    expect(err.retryable).toBe(false);
    expect(seen[0]?.authorization).toBeUndefined();
  });

  it('refuses a tampered body and leaves nothing in the cache dir', async () => {
    const tampered = Buffer.from(body);
    tampered[1000] = (tampered[1000] ?? 0) ^ 0xff;
    const url = `${await serve(authorized((res) => res.end(tampered)))}/a.tgz`;
    const err = await refusal(
      new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({ ...artifact, url }),
    );
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_CORRUPT);
    expect(err.message).toMatch(/tampered/);
    expect(await cacheContents()).toEqual([]);
  });

  it('refuses a body that is complete but shorter than declared', async () => {
    const short = body.subarray(0, SIZE - 10);
    const url = `${await serve(authorized((res) => res.end(short)))}/a.tgz`;
    const err = await refusal(
      new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({ ...artifact, url }),
    );
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_CORRUPT);
    expect(err.message).toMatch(/truncated/);
    expect(await cacheContents()).toEqual([]);
  });

  it('refuses a body the server breaks off, as corrupt and retryable', async () => {
    const url = `${await serve(
      authorized((res) => {
        res.writeHead(200, { 'content-length': String(SIZE) });
        res.write(body.subarray(0, SIZE / 2), () => res.destroy());
      }),
    )}/a.tgz`;
    const err = await refusal(
      new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({ ...artifact, url }),
    );
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_CORRUPT);
    expect(err.message).toMatch(/truncated/);
    expect(err.retryable).toBe(true);
    expect(await cacheContents()).toEqual([]);
  });

  it('refuses a body larger than declared without reading it to the end', async () => {
    // An endless body: only a download that stops at `size` bytes can finish.
    let closed!: Promise<unknown>;
    const url = `${await serve(
      authorized((res) => {
        closed = new Promise((resolve) => res.once('close', resolve)); // events.once would reject on 'error', unawaited
        res.writeHead(200);
        const pump = (): void => {
          while (!res.destroyed && res.write(body));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      }),
    )}/a.tgz`;
    const err = await refusal(
      new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({ ...artifact, url }),
    );
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_CORRUPT);
    expect(err.message).toMatch(/larger than the 262144 bytes/);
    await closed; // the agent hung up
    expect(await cacheContents()).toEqual([]);
  });

  it('reports a 503 and an unreachable server as retryable fetch errors', async () => {
    const url = `${await serve((_req, res) => res.writeHead(503).end())}/a.tgz`;
    const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
    const unavailable = await refusal(cache.get({ ...artifact, url }));
    expect(unavailable.code).toBe(HostErrorCodes.ARTIFACT_FETCH);
    expect(unavailable.message).toMatch(/503/);
    expect(unavailable.retryable).toBe(true);

    server?.close();
    await once(server as Server, 'close');
    server = undefined;
    const unreachable = await refusal(cache.get({ ...artifact, url }));
    expect(unreachable.code).toBe(HostErrorCodes.ARTIFACT_FETCH);
    expect(unreachable.retryable).toBe(true);
  });

  it('refuses a redirect without following it', async () => {
    const url = `${await serve((req, res) => {
      if (req.url === '/a.tgz') res.writeHead(302, { location: '/elsewhere.tgz' }).end();
      else authorized()(req, res);
    })}/a.tgz`;
    const err = await refusal(
      new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({ ...artifact, url }),
    );
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_FETCH);
    expect(err.message).toMatch(/redirect/);
    expect(err.retryable).toBe(false);
    expect(seen.map((r) => r.url)).toEqual(['/a.tgz']);
  });

  it('shares one fetch among concurrent callers of one digest', async () => {
    const url = `${await serve(authorized())}/a.tgz`;
    const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
    const paths = await Promise.all(
      Array.from({ length: 10 }, () => cache.get({ ...artifact, url })),
    );
    expect(new Set(paths)).toEqual(new Set([join(cacheDir, `${artifact.sha256}.slug`)]));
    expect(seen).toHaveLength(1);
    expect(await cacheContents()).toEqual([`${artifact.sha256}.slug`]);
  });

  it('serves a cached artifact without a request, also to a new cache on the same dir', async () => {
    const url = `${await serve(authorized())}/a.tgz`;
    const first = await new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({
      ...artifact,
      url,
    });
    const again = await new ArtifactCache({ dir: cacheDir, token: TOKEN }).get({
      ...artifact,
      url,
    });
    expect(again).toBe(first);
    expect(seen).toHaveLength(1);
  });

  describe('aborts', () => {
    /** A server that holds each response until `release()`. */
    async function held(): Promise<{
      url: string;
      requested: (n: number) => Promise<void>;
      release: () => void;
      hungUp: () => Promise<unknown>;
    }> {
      const requests: ServerResponse[] = [];
      const waiting: { n: number; resolve: () => void }[] = [];
      const url = `${await serve((_req, res) => {
        requests.push(res);
        for (const w of waiting.filter((w) => requests.length >= w.n)) w.resolve();
      })}/a.tgz`;
      return {
        url,
        /** Resolves once the server has seen `n` requests. */
        requested: (n) =>
          new Promise<void>((resolve) => {
            if (requests.length >= n) resolve();
            else waiting.push({ n, resolve });
          }),
        release: () => {
          for (const res of requests)
            if (!res.destroyed) res.writeHead(200, { 'content-length': String(SIZE) }).end(body);
        },
        hungUp: () => {
          const res = requests[0];
          if (res === undefined) throw new Error('no request held');
          return res.closed ? Promise.resolve() : once(res, 'close');
        },
      };
    }

    it("one caller's abort leaves the others' fetch running", async () => {
      const s = await held();
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
      const controller = new AbortController();
      const leaving = cache.get({ ...artifact, url: s.url }, { signal: controller.signal });
      const leavingOutcome = leaving.then(
        () => 'resolved',
        (e: unknown) => e,
      );
      const staying = cache.get({ ...artifact, url: s.url });
      const stayingWithSignal = cache.get(
        { ...artifact, url: s.url },
        { signal: new AbortController().signal },
      );
      await s.requested(1);
      const reason = new Error('caller gave up');
      controller.abort(reason);
      expect(await leavingOutcome).toBe(reason);
      s.release();
      expect(await staying).toBe(join(cacheDir, `${artifact.sha256}.slug`));
      expect(await stayingWithSignal).toBe(join(cacheDir, `${artifact.sha256}.slug`));
      expect(seen).toHaveLength(1);
    });

    it('cancels the fetch once every caller has aborted, and the next get fetches afresh', async () => {
      const s = await held();
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
      const a = new AbortController();
      const b = new AbortController();
      const outcomes = [a, b].map((c) =>
        cache.get({ ...artifact, url: s.url }, { signal: c.signal }).catch((e: unknown) => e),
      );
      await s.requested(1);
      a.abort();
      b.abort();
      await Promise.all(outcomes);
      await s.hungUp(); // the agent cancelled the request
      const fresh = cache.get({ ...artifact, url: s.url });
      await s.requested(2);
      s.release();
      expect(await fresh).toBe(join(cacheDir, `${artifact.sha256}.slug`));
      expect(seen).toHaveLength(2);
      expect(await cacheContents()).toEqual([`${artifact.sha256}.slug`]);
    });

    it('an already aborted signal makes no request', async () => {
      const url = `${await serve(authorized())}/a.tgz`;
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
      await expect(
        cache.get({ ...artifact, url }, { signal: AbortSignal.abort() }),
      ).rejects.toThrow();
      expect(seen).toEqual([]);
    });
  });

  it.each<[string, (a: SlugArtifact) => unknown]>([
    ['no sha256', ({ url, size }) => ({ url, size })],
    ['an uppercase sha256', (a) => ({ ...a, sha256: a.sha256.toUpperCase() })],
    ['a short sha256', (a) => ({ ...a, sha256: a.sha256.slice(1) })],
    ['an ftp:// url', (a) => ({ ...a, url: 'ftp://127.0.0.1/a.tgz' })],
    ['a relative url', (a) => ({ ...a, url: '/a.tgz' })],
    ['an unparseable http url', (a) => ({ ...a, url: 'http://' })],
    ['credentials in the url', (a) => ({ ...a, url: a.url.replace('http://', 'http://u:p@') })],
    ['a file:// url with a host', (a) => ({ ...a, url: 'file://elsewhere/a.tgz' })],
    ['a negative size', (a) => ({ ...a, size: -1 })],
    ['a NaN size', (a) => ({ ...a, size: Number.NaN })],
    ['a fractional size', (a) => ({ ...a, size: 1.5 })],
    ['null', () => null],
  ])('refuses a descriptor with %s, without a request', async (_what, make) => {
    const url = `${await serve(authorized())}/a.tgz`;
    const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
    const err = await refusal(cache.get(make({ ...artifact, url }) as SlugArtifact));
    expect(err.code).toBe(HostErrorCodes.ARTIFACT_INVALID);
    expect(seen).toEqual([]);
    expect(await cacheContents()).toEqual([]);
  });

  describe('stalls and leftovers', () => {
    it('fails a download whose server sends headers then nothing, as stalled and retryable, leaving no file', async () => {
      const url = `${await serve(
        authorized((res) => res.writeHead(200, { 'content-length': String(SIZE) }).flushHeaders()),
      )}/a.tgz`;
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN, idleTimeoutMs: 200 });
      const err = await refusal(cache.get({ ...artifact, url }));
      expect(err.code).toBe(HostErrorCodes.ARTIFACT_STALLED);
      expect(err.retryable).toBe(true);
      expect(err.message).toContain(`0 of ${SIZE} bytes`);
      expect(await cacheContents()).toEqual([]);
    });

    it('fails a download that stops half-way, and one whose headers never come', async () => {
      const half = SIZE / 2;
      let answer = true;
      const url = `${await serve(
        authorized((res) => {
          if (!answer) return; // holds the request: no headers
          res.writeHead(200, { 'content-length': String(SIZE) });
          res.write(body.subarray(0, half));
        }),
      )}/a.tgz`;
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN, idleTimeoutMs: 200 });
      const err = await refusal(cache.get({ ...artifact, url }));
      expect(err.code).toBe(HostErrorCodes.ARTIFACT_STALLED);
      expect(err.message).toContain(`${half} of ${SIZE} bytes`);
      answer = false;
      const silent = await refusal(cache.get({ ...artifact, url }));
      expect(silent.code).toBe(HostErrorCodes.ARTIFACT_STALLED);
      expect(await cacheContents()).toEqual([]);
      // The stalls cost no later download: the next one completes.
      answer = true;
      server?.removeAllListeners('request');
      server?.on('request', authorized());
      expect(await cache.get({ ...artifact, url })).toBe(join(cacheDir, `${artifact.sha256}.slug`));
    });

    it('a slow download that keeps sending is not cut off by the idle timeout', async () => {
      const url = `${await serve(
        authorized((res) => {
          res.writeHead(200, { 'content-length': String(SIZE) });
          let sent = 0;
          const step = SIZE / 8;
          const tick = setInterval(() => {
            res.write(body.subarray(sent, sent + step));
            sent += step;
            if (sent >= SIZE) {
              clearInterval(tick);
              res.end();
            }
          }, 200);
          res.on('close', () => clearInterval(tick));
        }),
      )}/a.tgz`;
      // 8 pauses of 200 ms: 1.6 s in all, longer than the 1 s idle bound. Server and client share
      // this event loop: with pauses near the bound (60 of 200 ms), a stall of 140 ms on a loaded
      // machine can bring both timers due in one turn, the idle one firing before the read.
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN, idleTimeoutMs: 1000 });
      expect(await cache.get({ ...artifact, url })).toBe(join(cacheDir, `${artifact.sha256}.slug`));
    });

    it('an abort at any point of a download leaves no .part file once get() has rejected', async () => {
      const url = `${await serve(
        authorized((res) => {
          res.writeHead(200, { 'content-length': String(SIZE) });
          res.write(body.subarray(0, 1024));
        }),
      )}/a.tgz`;
      const cache = new ArtifactCache({ dir: cacheDir, token: TOKEN });
      for (let ticks = 0; ticks < 12; ticks++) {
        const ac = new AbortController();
        const outcome = cache.get({ ...artifact, url }, { signal: ac.signal }).catch((e) => e);
        for (let i = 0; i < ticks; i++) await new Promise((r) => setImmediate(r));
        ac.abort(new Error(`abort after ${ticks} ticks`));
        expect(await outcome).toMatchObject({ message: `abort after ${ticks} ticks` });
        expect(await cacheContents(), `after ${ticks} ticks`).toEqual([]);
      }
    });

    it('deletes the .part leftovers of a download that died with its process, and keeps fresh ones', async () => {
      const src = join(dir, 'app.tgz');
      await writeFile(src, body);
      await mkdir(cacheDir, { recursive: true });
      const stale = join(cacheDir, `.${artifact.sha256}.dead0001.part`);
      const fresh = join(cacheDir, `.${artifact.sha256}.live0001.part`);
      await writeFile(stale, body.subarray(0, 100));
      await writeFile(fresh, body.subarray(0, 100));
      const old = new Date(Date.now() - 120_000);
      await utimes(stale, old, old);
      const cache = new ArtifactCache({ dir: cacheDir, idleTimeoutMs: 60_000 });
      await cache.get({ ...artifact, url: pathToFileURL(src).href });
      expect(await cacheContents()).toEqual(
        [`${artifact.sha256}.slug`, `.${artifact.sha256}.live0001.part`].sort(),
      );
    });

    it('refuses a bad idleTimeoutMs', () => {
      for (const idleTimeoutMs of [0, -1, Number.NaN, 1.5, 2 ** 31])
        expect(() => new ArtifactCache({ dir: cacheDir, idleTimeoutMs })).toThrow(
          expect.objectContaining({ code: 'FLOTILLA_HOST_INVALID_OPTIONS', path: 'idleTimeoutMs' }),
        );
    });
  });

  it('refuses to be created without a dir', () => {
    expect(() => new ArtifactCache({ dir: '' })).toThrow(
      expect.objectContaining({ code: HostErrorCodes.INVALID_OPTIONS }),
    );
  });
});
