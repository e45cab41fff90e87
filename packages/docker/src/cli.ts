#!/usr/bin/env node
/**
 * `flotilla-stack`: builds the stack image from this host's files (see {@link createStackImage}).
 *
 * ```
 * flotilla-stack build [--socket /var/run/docker.sock] [--repository flotilla/stack]
 *                      [--extra git,make] [--label key=value]... [--json]
 * ```
 *
 * Prints the image reference (`flotilla/stack:<digest12>`), or with `--json` the whole result.
 * Exits 0 when the image is there (built now or before), 1 on failure with the error's code, 2
 * on a usage error.
 *
 * @packageDocumentation
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { isFlotillaError } from '@flotilla/core';
import { createStackImage } from './stack-image.js';

const USAGE = `usage: flotilla-stack build [options]

Builds the stack image (bash, coreutils, sed, grep, tar, gzip, curl, node, npm and their shared
libraries, copied from this host; user flotilla, uid 1000) with docker import. Nothing is pulled.
It is tagged <repository>:<digest of its inputs> and <repository>:latest, and built again only
when its inputs change.

options:
  --socket PATH        dockerd socket (default: DOCKER_HOST, else /var/run/docker.sock)
  --repository NAME    repository of the tags (default flotilla/stack)
  --extra LIST         more programs from this host's PATH, comma-separated (git,make)
  --label KEY=VALUE    a label on the image (repeatable); labels are part of the digest
  --json               print the result as JSON
  -h, --help           this text
`;

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(
  argv: readonly string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        socket: { type: 'string' },
        repository: { type: 'string' },
        extra: { type: 'string' },
        label: { type: 'string', multiple: true },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err(`flotilla-stack: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    out(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'build') {
    err(`flotilla-stack: expected the command 'build'\n${USAGE}`);
    return 2;
  }
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const eq = l.indexOf('=');
    if (eq < 1) {
      err(`flotilla-stack: --label ${l}: use KEY=VALUE\n`);
      return 2;
    }
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const socket = values.socket ?? process.env.DOCKER_HOST?.replace(/^unix:\/\//, '');
  const docker = socket === undefined ? new Docker() : new Docker({ socketPath: socket });
  try {
    const stack = await createStackImage({
      docker,
      labels,
      ...(values.repository === undefined ? {} : { repository: values.repository }),
      ...(values.extra === undefined
        ? {}
        : { extraPrograms: values.extra.split(',').filter((p) => p !== '') }),
    });
    if (values.json === true) out(`${JSON.stringify(stack, null, 2)}\n`);
    else {
      out(`${stack.image}\n`);
      err(
        `${stack.built ? 'built' : 'already there:'} ${stack.image} (${stack.id.slice(0, 19)})` +
          (stack.missing.length > 0
            ? `; left out, not on this host: ${stack.missing.join(' ')}`
            : '') +
          '\n',
      );
    }
    return 0;
  } catch (e) {
    const code = isFlotillaError(e) ? `${e.code}: ` : '';
    err(`flotilla-stack: ${code}${(e as Error).message}\n`);
    return 1;
  }
}

// argv[1] is the path as run: npm's node_modules/.bin/flotilla-stack is a symlink to this file.
const isMain =
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain) process.exitCode = await main(process.argv.slice(2));
