import type Docker from 'dockerode';
import { engineError } from '../errors.js';

/** The HTTP status of a dockerd error, when it has one. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Reads a JSON-lines progress stream of dockerd (build, import), calling `onMessage` per object; rejects on an `error` message. */
export async function readProgress(
  stream: NodeJS.ReadableStream,
  onMessage: (msg: Record<string, unknown>) => void,
  signal?: AbortSignal,
): Promise<void> {
  let rest = '';
  const decoder = new TextDecoder();
  let failure: Error | undefined;
  const onAbort = (): void => {
    (stream as unknown as { destroy?: (e?: Error) => void }).destroy?.();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      rest += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf('\n')) !== -1) {
        const line = rest.slice(0, nl).trim();
        rest = rest.slice(nl + 1);
        if (line === '') continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          msg = { stream: `${line}\n` };
        }
        if (typeof msg.error === 'string' && failure === undefined) failure = new Error(msg.error);
        onMessage(msg);
      }
    }
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  signal?.throwIfAborted();
  if (rest.trim() !== '') {
    try {
      onMessage(JSON.parse(rest) as Record<string, unknown>);
    } catch {
      onMessage({ stream: rest });
    }
  }
  if (failure !== undefined) throw failure;
}

/** Whether an image is present locally; never pulls. */
export async function imageExists(
  docker: Pick<Docker, 'getImage'>,
  ref: string,
): Promise<
  | { Id: string; Config?: { Cmd?: string[] | null; Entrypoint?: string[] | string | null } }
  | undefined
> {
  try {
    return (await docker.getImage(ref).inspect()) as unknown as {
      Id: string;
      Config?: { Cmd?: string[] | null };
    };
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw engineError(`cannot inspect image ${ref}`, err);
  }
}

/** Repository and tag rules of Docker, checked up front. */
export const REPOSITORY =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
