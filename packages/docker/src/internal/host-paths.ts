/** Where the host's own files live: a directory given to a container user may be neither in one nor hold one. */
const SYSTEM_DIRS = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/lib/apt',
  '/var/lib/docker',
  '/var/lib/dpkg',
  '/var/run',
];
/** Directories many things share: one may be inside them, never one of them or above them. */
const SHARED_DIRS = [
  '/home',
  '/mnt',
  '/media',
  '/opt',
  '/srv',
  '/tmp',
  '/var',
  '/var/lib',
  '/var/tmp',
];

const inside = (path: string, dir: string): boolean =>
  dir === '/' || path === dir || path.startsWith(`${dir}/`);

/**
 * The system or shared directory that chowning `path` (an absolute, normalised path) to a
 * container's user would give away, or undefined when it is a directory of its own.
 */
export function givesAwayHost(path: string): string | undefined {
  return (
    SYSTEM_DIRS.find((d) => inside(path, d) || inside(d, path)) ??
    SHARED_DIRS.find((d) => inside(d, path))
  );
}
