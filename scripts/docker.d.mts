/** The socket a system dockerd listens on. */
export const DEFAULT_SOCKET: string;
/** The message when dockerd is missing, naming the command to run. */
export const DOCKERD_MISSING: string;
export function findDockerd(): string | undefined;
/** Installs Debian packages when root with apt-get (printing it), else throws `missing`. */
export function aptInstall(packages: string[], missing: string): boolean;
export function pingDocker(socketPath: string, timeoutMs?: number): Promise<boolean>;
/** Starts or joins our own dockerd under `dir` (default /tmp/flotilla-dockerd). */
export function startDockerd(options?: {
  dir?: string;
  storageDriver?: string;
  extraArgs?: string[];
}): Promise<{
  socketPath: string;
  dir: string;
  started: boolean;
  /** The daemon's pid while it runs. */
  readonly pid: number | undefined;
  stop: () => Promise<void>;
}>;
/** The dockerd to test against: FLOTILLA_DOCKER_HOST, the system's, or our own. */
export function acquireDocker(): Promise<{
  socketPath: string;
  source: 'env' | 'system' | 'own';
  release: () => Promise<void>;
}>;
