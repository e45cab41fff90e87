// Quoting for bash, and the .profile.d script that gives legacy config_vars their defaults.

/** Quotes a string as one bash word: `'it'\''s'`. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Whether `key` can be an environment variable's name in a shell. */
export function isEnvName(key: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key);
}

/**
 * The `.profile.d/000_config_vars.sh` script of a release's legacy `config_vars`: each becomes
 * a default, `export K=${K:-'value'}`, that a config var of the app overrides. For bash (the
 * shell that sources `.profile.d`).
 */
export function configVarsScript(vars: Readonly<Record<string, string>>): string {
  const lines = ['# Defaults from the buildpack release (config_vars); app config vars win.'];
  for (const [key, value] of Object.entries(vars)) {
    // The value is one single-quoted word, whatever it holds (quotes, `}`, `$`, newlines):
    // bash removes the quotes inside `${K:-...}`, and assigning through `export` neither splits
    // nor globs. An empty K counts as unset, as `:-` has it.
    lines.push(`export ${key}=\${${key}:-${shellQuote(value)}}`);
  }
  return `${lines.join('\n')}\n`;
}
