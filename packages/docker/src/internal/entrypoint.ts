import { constants } from 'node:os';

/**
 * The signals a job's container passes on to every process in it. dockerd signals only a
 * container's PID 1, and PID 1 of a PID namespace gets only the signals it has a handler for,
 * so its shell traps these and sends each on with `kill -1` (all processes of the container but
 * itself): the whole job gets it, as a process group does under `ProcessDriver`.
 */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGABRT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGALRM',
  'SIGTERM',
  'SIGWINCH',
];

const NAMES = FORWARDED_SIGNALS.map((s) => s.slice(3)).join(' ');

/**
 * PID 1 of a job's container, a POSIX shell script given the Procfile command as `$1`:
 *
 * - it traps {@link FORWARDED_SIGNALS} and passes each on to every process of the container;
 * - it runs the job in a subshell in the background: `.profile.d/*.sh` then `.profile` are
 *   sourced (as on Heroku, and as `ProcessDriver` does), then the command is `eval`ed. That
 *   shell ends on HUP, INT, QUIT or TERM once its current command has (with that command's
 *   status), and lets USR1, USR2 and the rest reach the command without dying of them;
 *   INT and QUIT, which a background job starts with ignored, are reset first;
 * - it waits for the job and exits with its status: 128+N for a command that signal N killed.
 *   When PID 1 exits, the kernel kills whatever is left in the container: no orphan outlives
 *   the job.
 */
export const INIT_SCRIPT = `__flotilla_cmd=$1
for __flotilla_s in ${NAMES}; do
  trap "kill -s $__flotilla_s -1 2>/dev/null" "$__flotilla_s"
done
(
  trap - INT QUIT
  trap 'exit $?' HUP INT QUIT TERM
  trap : USR1 USR2 ABRT ALRM WINCH
  set --
  if [ -d .profile.d ]; then
    for __flotilla_f in .profile.d/*.sh; do if [ -r "$__flotilla_f" ]; then . "./$__flotilla_f"; fi; done
  fi
  unset __flotilla_f __flotilla_s
  if [ -r .profile ]; then . ./.profile; fi
  eval "$__flotilla_cmd"
) &
__flotilla_child=$!
while :; do
  wait "$__flotilla_child"; __flotilla_status=$?
  # a trapped signal ends wait early (status over 128) while the job runs on
  if [ "$__flotilla_status" -gt 128 ] && kill -0 "$__flotilla_child" 2>/dev/null; then continue; fi
  break
done
exit "$__flotilla_status"
`;

/**
 * A container's entrypoint: the init script run by bash when the image has it (the stack image
 * does), else by `/bin/sh`; the command follows as an argument, so nothing is quoted.
 */
export function entrypoint(command: string): string[] {
  return [
    '/bin/sh',
    '-c',
    'if command -v bash >/dev/null 2>&1; then exec bash -c "$1" flotilla "$2"; fi; exec /bin/sh -c "$1" flotilla "$2"',
    'flotilla-init',
    INIT_SCRIPT,
    command,
  ];
}

/** The name of a signal number, or undefined. */
export function signalName(n: number): NodeJS.Signals | undefined {
  for (const [name, num] of Object.entries(constants.signals)) {
    if (num === n) return name as NodeJS.Signals;
  }
  return undefined;
}

/**
 * A container's exit code as the job's status: 0-128 an exit code; 129 and up the signal that
 * killed the command (the shell's way, and dockerd's for a killed PID 1).
 */
export function decodeExitCode(exitCode: number): {
  code: number | null;
  signal: NodeJS.Signals | null;
} {
  if (exitCode > 128 && exitCode < 128 + 65) {
    const signal = signalName(exitCode - 128);
    if (signal !== undefined) return { code: null, signal };
  }
  return { code: exitCode, signal: null };
}
