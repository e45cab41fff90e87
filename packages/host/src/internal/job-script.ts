// The bash script every ProcessDriver job runs in: it sources the slug's profile scripts, runs
// the Procfile command, and writes the command's exit status to a file so that a driver that
// adopts the job after a restart can learn how it ended.
import { constants } from 'node:os';

/** The signals whose trap in {@link JOB_SCRIPT} ends the job (once a running command has ended). */
export const JOB_SCRIPT_ENDS_ON: ReadonlySet<NodeJS.Signals> = new Set([
  'SIGTERM',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
]);

/** One trap per {@link JOB_SCRIPT_ENDS_ON} signal, passing the status a shell gives its death by it. */
const ENDING_TRAPS = [...JOB_SCRIPT_ENDS_ON]
  .map((s) => `trap '__flotilla_end ${128 + constants.signals[s]}' ${s.slice(3)}`)
  .join('\n');

/**
 * Run as `bash -c JOB_SCRIPT bash <command> <exit file>`.
 *
 * - TERM, INT, HUP and QUIT are trapped, so the shell, the process group's leader, waits for
 *   the command to finish handling them (a graceful shutdown ends with the command's status,
 *   not the shell's death); the trap re-raises a signal that killed the command, so the job
 *   ends by that signal, as a shell that `exec`s would. USR1 and USR2 are trapped so that
 *   `signal(id, 'SIGUSR2')` reaches the command without killing the shell. Trapped signals are
 *   reset to their defaults in the command, so it sees all of them normally.
 * - A signal that comes before the command starts (while the profile scripts run) ends the
 *   job by that signal, not with the status of the last profile command.
 * - The EXIT trap writes the status to the exit file. A command that `exec`s replaces the
 *   shell, and then no file is written: the driver that started it sees its exit anyway.
 * - `.profile.d/*.sh`, then `.profile`, are sourced as on Heroku; then the command is
 *   `eval`ed with no positional parameters, so shell syntax in it works.
 */
export const JOB_SCRIPT = `__flotilla_cmd=$1 __flotilla_exit_file=$2 __flotilla_ran=
__flotilla_end() {
  __flotilla_s=$?
  if [ -n "\${1-}" ] && [ -z "$__flotilla_ran" ]; then __flotilla_s=$1; fi
  trap - EXIT TERM INT HUP QUIT USR1 USR2
  printf '%s\\n' "$__flotilla_s" > "$__flotilla_exit_file" 2>/dev/null
  case $__flotilla_s in 129|130|131|134|137|138|139|140|141|142|143) kill -n "$((__flotilla_s - 128))" "$$" ;; esac
  exit "$__flotilla_s"
}
trap __flotilla_end EXIT
${ENDING_TRAPS}
trap : USR1 USR2
set --
for __flotilla_f in .profile.d/*.sh; do if [ -r "$__flotilla_f" ]; then . "./$__flotilla_f"; fi; done
unset __flotilla_f
if [ -r .profile ]; then . ./.profile; fi
__flotilla_ran=1
eval "$__flotilla_cmd"
`;

/** The name of a signal number, or undefined. */
export function signalName(n: number): NodeJS.Signals | undefined {
  for (const [name, num] of Object.entries(constants.signals)) {
    if (num === n) return name as NodeJS.Signals;
  }
  return undefined;
}

/** Whether `name` is a signal Node can send. */
export function isSignal(name: unknown): name is NodeJS.Signals {
  return typeof name === 'string' && Object.hasOwn(constants.signals, name);
}

/**
 * Reads a shell status from the exit file: `code` for 0-128, the signal for 129 and up (as the
 * shell reports a command a signal killed).
 */
export function decodeShellStatus(
  text: string,
): { code: number | null; signal: NodeJS.Signals | null } | undefined {
  const s = Number(text.trim());
  if (text.trim() === '' || !Number.isInteger(s) || s < 0 || s > 255) return undefined;
  if (s > 128) {
    const signal = signalName(s - 128);
    if (signal !== undefined) return { code: null, signal };
  }
  return { code: s, signal: null };
}
