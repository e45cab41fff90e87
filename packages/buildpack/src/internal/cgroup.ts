// A cgroup per build step, where this process may make one: every process the step starts is
// in it whatever it does (a new session, a double fork, an orphan reparented to init), and
// killing the cgroup ends them all. cgroup v2 kills with `cgroup.kill`; cgroup v1 has no such
// file, so the step's processes are frozen (freezer), killed one by one, and thawed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hostTag, taggedOwnerGone } from './owner.js';
import { waitFor } from './poll.js';

/** Where step cgroups are made: a cgroup directory this process may create children in. */
export interface CgroupParent {
  readonly version: 2 | 1;
  readonly dir: string;
}

const PREFIX = 'flotilla-step-';
/** A step cgroup's name: its builder's pid and host tag. */
const STEP_NAME = new RegExp(`^${PREFIX}(\\d+)-([0-9a-f]{8})-`);
/** How long a killed cgroup may take to empty before it is left for a later sweep, ms. */
const EMPTY_WAIT_MS = 10_000;

let detected: Promise<CgroupParent | undefined> | undefined;

/** The parent of step cgroups on this host, found once per process; undefined where there is none. */
export function cgroupParent(): Promise<CgroupParent | undefined> {
  detected ??= detect().catch(() => undefined);
  return detected;
}

/** One step's cgroup. */
export class StepCgroup {
  readonly #parent: CgroupParent;
  /** The cgroup's directory. */
  readonly dir: string;
  #removed = false;

  private constructor(parent: CgroupParent, dir: string) {
    this.#parent = parent;
    this.dir = dir;
  }

  /** Makes a fresh cgroup under `parent`. */
  static async create(parent: CgroupParent): Promise<StepCgroup> {
    await sweepStale(parent);
    const dir = join(
      parent.dir,
      `${PREFIX}${process.pid}-${hostTag()}-${randomBytes(6).toString('hex')}`,
    );
    await mkdir(dir);
    return new StepCgroup(parent, dir);
  }

  /** The file a process writes its pid into to enter the cgroup. */
  get procsFile(): string {
    return join(this.dir, 'cgroup.procs');
  }

  /** Kills every process in the cgroup and resolves once it is empty (or the wait ran out). */
  async kill(): Promise<void> {
    await killCgroup(this.#parent.version, this.dir);
  }

  /** Kills what is left and removes the cgroup. Idempotent. */
  async remove(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    await this.kill().catch(() => undefined);
    await rmdir(this.dir).catch(() => undefined);
  }
}

async function detect(): Promise<CgroupParent | undefined> {
  for (const parent of await cgroupCandidates()) {
    if (await usable(parent)) return parent;
  }
  return undefined;
}

/** The cgroups of this process a step cgroup could be made in: its cgroup v2, then its v1 freezer. */
export async function cgroupCandidates(): Promise<CgroupParent[]> {
  const [ownText, mountText] = await Promise.all([
    readFile('/proc/self/cgroup', 'utf8'),
    readFile('/proc/self/mountinfo', 'utf8'),
  ]);
  const own = ownText.split('\n').map((line) => /^(\d+):([^:]*):(.*)$/.exec(line));
  const mounts = mountText.split('\n').flatMap((line) => {
    const [pre, post] = line.split(' - ');
    if (pre === undefined || post === undefined) return [];
    const fields = pre.split(' ');
    const [fstype, , superOptions = ''] = post.split(' ');
    return [
      {
        root: unescapeMount(fields[3] ?? ''),
        point: unescapeMount(fields[4] ?? ''),
        fstype,
        options: superOptions.split(','),
      },
    ];
  });
  const candidates: CgroupParent[] = [];
  const v2Path = own.find((m) => m?.[1] === '0' && m[2] === '')?.[3];
  for (const mount of mounts) {
    if (mount.fstype === 'cgroup2' && v2Path !== undefined) {
      const dir = within(mount.root, mount.point, v2Path);
      if (dir !== undefined) candidates.push({ version: 2, dir });
    }
  }
  const freezerPath = own.find((m) => m?.[2]?.split(',').includes('freezer') === true)?.[3];
  for (const mount of mounts) {
    if (
      mount.fstype === 'cgroup' &&
      mount.options.includes('freezer') &&
      freezerPath !== undefined
    ) {
      const dir = within(mount.root, mount.point, freezerPath);
      if (dir !== undefined) candidates.push({ version: 1, dir });
    }
  }
  return candidates;
}

/** The directory of cgroup `path` in a mount of `root` at `point`, when the mount shows it. */
function within(root: string, point: string, path: string): string | undefined {
  if (path !== root && !path.startsWith(root === '/' ? '/' : `${root}/`)) return undefined;
  return join(point, path.slice(root === '/' ? 0 : root.length));
}

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Whether a child cgroup can be made there, a process moved into it, and the cgroup killed. */
export async function usable(parent: CgroupParent): Promise<boolean> {
  let cgroup: StepCgroup;
  try {
    cgroup = await StepCgroup.create(parent);
  } catch {
    return false;
  }
  try {
    if (parent.version === 2) await access(join(cgroup.dir, 'cgroup.kill'));
    else await access(join(cgroup.dir, 'freezer.state'));
    const probe = spawn('/bin/sh', ['-c', 'echo $$ >"$0"', cgroup.procsFile], { stdio: 'ignore' });
    const [code] = (await once(probe, 'exit')) as [number | null];
    return code === 0;
  } catch {
    return false;
  } finally {
    await cgroup.remove();
  }
}

/** Kills and removes the step cgroups of builders of this host that are gone (SIGKILLed mid-step). */
async function sweepStale(parent: CgroupParent): Promise<void> {
  const names = await readdir(parent.dir).catch(() => [] as string[]);
  for (const name of names) {
    // Only this host's (a pid of another host or pid namespace cannot be judged from here).
    const m = STEP_NAME.exec(name);
    if (m === null || !taggedOwnerGone(Number(m[1]), m[2] as string)) continue;
    const dir = join(parent.dir, name);
    await killCgroup(parent.version, dir).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  }
}

async function killCgroup(version: 2 | 1, dir: string): Promise<void> {
  if (version === 2) {
    await writeFile(join(dir, 'cgroup.kill'), '1');
  } else {
    // Frozen processes cannot fork: every pid read then is all there is.
    await writeFile(join(dir, 'freezer.state'), 'FROZEN');
    await waitFor(
      async () => (await readFile(join(dir, 'freezer.state'), 'utf8')).trim() === 'FROZEN',
      EMPTY_WAIT_MS,
    );
    for (const pid of await procs(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await writeFile(join(dir, 'freezer.state'), 'THAWED');
  }
  await waitFor(
    async () =>
      version === 2
        ? /^populated 0$/m.test(await readFile(join(dir, 'cgroup.events'), 'utf8'))
        : (await procs(dir)).length === 0,
    EMPTY_WAIT_MS,
  );
}

async function procs(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}
