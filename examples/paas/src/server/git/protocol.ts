/**
 * What the server streams back to the `pre-receive` hook while it builds and deploys a push:
 * one JSON object per line, output lines as they come, then one result.
 */
export type DeployLine =
  | { readonly kind: 'output'; readonly line: string }
  | { readonly kind: 'result'; readonly ok: boolean; readonly message: string };

/** One line of the stream. */
export function formatDeployLine(msg: DeployLine): string {
  return JSON.stringify(msg) + '\n';
}

/** Parses one line of the stream; anything else is `undefined`. */
export function parseDeployLine(line: string): DeployLine | undefined {
  try {
    const v = JSON.parse(line) as Partial<Record<string, unknown>>;
    if (v.kind === 'output' && typeof v.line === 'string') return { kind: 'output', line: v.line };
    if (v.kind === 'result' && typeof v.ok === 'boolean' && typeof v.message === 'string')
      return { kind: 'result', ok: v.ok, message: v.message };
  } catch {
    // not ours
  }
  return undefined;
}
