/** The path of a slug on a server's API: `/artifacts/<sha256>`. */
const ARTIFACT_PATH = /^\/artifacts\/[0-9a-f]{64}$/;

/** How long a server may take to answer a slug's request before the next is asked, ms. */
const ANSWER_TIMEOUT_MS = 10_000;

/**
 * A `fetch` for the host agent's `ArtifactCache` in a cluster: a slug is asked of the server
 * the release record names, and when that one cannot answer (gone with its machine, or it
 * lacks the slug: 404, 5xx) of the other servers in `peers()` (API base URLs such as
 * `http://10.0.0.2:7700`), which keep copies (see `ArtifactMirror`). The cache still checks
 * the size and digest of whatever comes. A server that does not answer within `answerTimeoutMs`
 * (default 10 s: a frozen machine accepts connections and says nothing) counts as gone. Other
 * URLs go to `base` as they are.
 */
export function failoverFetch(
  peers: (signal: AbortSignal | undefined) => Promise<readonly string[]>,
  base: typeof fetch = fetch,
  answerTimeoutMs = ANSWER_TIMEOUT_MS,
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
      // Its own deadline for the answer (not the body: the caller times a stalled one).
      const silent = new AbortController();
      const timer = setTimeout(
        () => silent.abort(new Error(`${origin} did not answer in ${answerTimeoutMs} ms`)),
        answerTimeoutMs,
      );
      try {
        const res = await base(new URL(url.pathname, origin), {
          ...init,
          signal: signal === undefined ? silent.signal : AbortSignal.any([signal, silent.signal]),
        });
        if (res.ok || (res.status !== 404 && res.status < 500)) return res;
        await last?.body?.cancel().catch(() => undefined);
        last = res;
      } catch (err) {
        if (signal?.aborted === true) throw err;
        failure = err;
      } finally {
        clearTimeout(timer);
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
