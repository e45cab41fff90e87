/** A throwaway etcd started by {@link startEtcd}. */
export interface TestEtcd {
  readonly endpoint: string;
  readonly dataDir: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly pid: number | undefined;
  /** Stops etcd with `signal` (default SIGTERM; SIGKILL for a crash) and starts it again. */
  restart(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops etcd without removing its data; `SIGSTOP` freezes it instead (no exit). */
  halt(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again after halt(); thaws it (SIGCONT) if halt froze it. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}
export function findEtcd(): string | undefined;
export const ETCD_MISSING: string;
export function freePort(): Promise<number>;
export function startEtcd(options?: {
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  timeoutMs?: number;
  extraArgs?: string[];
}): Promise<TestEtcd>;
export function acquireEtcd(
  options?: Parameters<typeof startEtcd>[0],
): Promise<{ endpoints: string[]; release: () => Promise<void> }>;
