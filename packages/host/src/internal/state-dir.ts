// The layout of ProcessDriver's state directory, and its lock:
//
//   <stateDir>/driver.lock          {"pid","startTime"} of the process whose driver holds it
//   <stateDir>/jobs/<id>/job.json   the job's identity, pid and /proc start time
//   <stateDir>/jobs/<id>/stdout.log, stderr.log   the job's output (it appends)
//   <stateDir>/jobs/<id>/exit       the shell's exit status, written by the job's shell
//   <stateDir>/jobs/<id>/exit.json  the exit status as the driver saw it
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HostError, HostErrorCodes } from '../errors.js';
import type { ExitStatus } from '../driver.js';
import { takePidLock } from './pid-lock.js';

/** What job.json holds. */
export interface JobRecord {
  readonly id: string;
  readonly app: string;
  readonly release: string;
  readonly processType: string;
  readonly index: number;
  readonly port: number | undefined;
  readonly memoryMiB: number | undefined;
  readonly stopGraceMs: number | undefined;
  readonly pid: number;
  readonly startTime: number;
  readonly startedAt: number;
}

/** Paths of one job's files. */
export interface JobPaths {
  readonly dir: string;
  readonly record: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly shellExit: string;
  readonly exit: string;
}

/** The files of job `id` under `stateDir`. */
export function jobPaths(stateDir: string, id: string): JobPaths {
  const dir = join(stateDir, 'jobs', id);
  return {
    dir,
    record: join(dir, 'job.json'),
    stdout: join(dir, 'stdout.log'),
    stderr: join(dir, 'stderr.log'),
    shellExit: join(dir, 'exit'),
    exit: join(dir, 'exit.json'),
  };
}

/** Writes a JSON file atomically (temporary file, then rename). */
export async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
const optInt = (v: unknown): boolean => v === undefined || v === null || int(v);

/** Parses job.json, or throws `FLOTILLA_HOST_STATE_RECORD`. */
export function parseJobRecord(text: string, path: string, id: string): JobRecord {
  let o: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      o = v as Record<string, unknown>;
    }
  } catch {
    // reported below
  }
  const ok =
    o !== undefined &&
    o.id === id &&
    str(o.app) &&
    str(o.release) &&
    str(o.processType) &&
    int(o.index) &&
    int(o.pid) &&
    o.pid > 1 &&
    int(o.startTime) &&
    int(o.startedAt) &&
    optInt(o.port) &&
    optInt(o.memoryMiB) &&
    optInt(o.stopGraceMs);
  if (!ok || o === undefined) {
    throw new HostError(
      HostErrorCodes.STATE_RECORD,
      `${path} is not a job record this driver wrote; its job is neither adopted nor stopped: check the process and remove the directory`,
      { jobId: id, path },
    );
  }
  const opt = (v: unknown): number | undefined => (int(v) ? v : undefined);
  return {
    id,
    app: o.app as string,
    release: o.release as string,
    processType: o.processType as string,
    index: o.index as number,
    port: opt(o.port),
    memoryMiB: opt(o.memoryMiB),
    stopGraceMs: opt(o.stopGraceMs),
    pid: o.pid as number,
    startTime: o.startTime as number,
    startedAt: o.startedAt as number,
  };
}

/** Reads exit.json, or undefined when there is none or it cannot be read. */
export async function readExit(path: string): Promise<ExitStatus | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as ExitStatus;
    return typeof v.reason === 'string' && int(v.finishedAt) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** State directories held by drivers of this process. */
const heldHere = new Set<string>();

/**
 * Takes the state directory's lock: refuses with `FLOTILLA_HOST_STATE_DIR_IN_USE` while another
 * live driver holds it (in this process or another), takes over a dead holder's lock.
 * Returns the function that releases it.
 */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const dir = resolve(stateDir);
  const inUse = (why: string): HostError =>
    new HostError(
      HostErrorCodes.STATE_DIR_IN_USE,
      `the driver state directory ${dir} is in use by ${why}: close that driver first, or give this one a directory of its own`,
      { path: dir },
    );
  if (heldHere.has(dir)) throw inUse('another driver in this process');
  heldHere.add(dir);
  const lockPath = join(dir, 'driver.lock');
  try {
    await mkdir(join(dir, 'jobs'), { recursive: true, mode: 0o700 });
    const holder = await takePidLock(lockPath);
    if (holder !== undefined) throw inUse(`process ${holder}`);
  } catch (err) {
    heldHere.delete(dir);
    if (err instanceof HostError) throw err;
    throw new HostError(
      HostErrorCodes.STATE_DIR,
      `cannot use ${dir} as the driver state directory: ${(err as Error).message}`,
      { path: dir, cause: err },
    );
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await unlink(lockPath).catch(() => undefined);
    heldHere.delete(dir);
  };
}
