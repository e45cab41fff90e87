/** The path of a slug on a server's API: `/artifacts/<sha256>`. */
const ARTIFACT_PATH = /^\/artifacts\/[0-9a-f]{64}$/;

/**
 * A `fetch` for the host agent's `ArtifactCache` in a cluster: a slug is asked of the server
 * the release record names, and when that one cannot answer (gone with its machine, or it
 * lacks the slug: 404, 5xx) of the other servers in `peers()` (API base URLs such as
 * `http://10.0.0.2:7700`), which keep copies (see `ArtifactMirror`). The cache still checks
 * the size and digest of whatever comes. Other URLs go to `base` as they are.
 */
export function failoverFetch(
  peers: (signal: AbortSignal | undefined) => Promise<readonly string[]>,
  base: typeof fetch = fetch,
): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (!ARTIFACT_PATH.test(url.pathname)) return base(input, init);
    const signal = init?.signal ?? undefined;
    let failure: unknown;
    let last: Response | undefined;
    const tried = new Set<string>();
    const attempt = async (origin: string): Promise<Response | undefined> => {
      if (tried.has(origin)) return undefined;
      tried.add(origin);
      try {
        const res = await base(new URL(url.pathname, origin), init);
        if (res.ok || (res.status !== 404 && res.status < 500)) return res;
        await last?.body?.cancel().catch(() => undefined);
        last = res;
      } catch (err) {
        if (signal?.aborted === true) throw err;
        failure = err;
      }
      return undefined;
    };
    const first = await attempt(url.origin);
    if (first !== undefined) return first;
    let others: readonly string[] = [];
    try {
      others = await peers(signal);
    } catch (err) {
      if (signal?.aborted === true) throw err;
      // The store is down too: only the named server could have answered.
    }
    for (const peer of others) {
      const origin = URL.canParse(peer) ? new URL(peer).origin : undefined;
      if (origin === undefined || origin === 'null') continue; // a host record's garbage address
      const res = await attempt(origin);
      if (res !== undefined) {
        await last?.body?.cancel().catch(() => undefined);
        return res;
      }
    }
    if (last !== undefined) return last;
    throw failure;
  };
}
