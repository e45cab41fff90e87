// Finding a step's program as execvp would, before the step is started through a wrapper (a
// wrapper's failing exec could not be told apart from the program's own exit status 127).
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** execvp's search path when the environment has no PATH. */
const DEFAULT_PATH = '/bin:/usr/bin';

/**
 * The absolute path of `program`: itself (resolved against `cwd`) when it holds a `/`, else the
 * first executable file of that name on `path`. Undefined when there is none.
 */
export async function resolveProgram(
  program: string,
  path: string | undefined,
  cwd: string,
): Promise<string | undefined> {
  const candidates = program.includes('/')
    ? [resolve(cwd, program)]
    : (path ?? DEFAULT_PATH)
        .split(delimiter)
        .map((dir) => (dir === '' ? cwd : isAbsolute(dir) ? dir : resolve(cwd, dir)))
        .map((dir) => join(dir, program));
  for (const candidate of candidates) {
    if (await executableFile(candidate)) return candidate;
  }
  return undefined;
}

async function executableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
