#!/usr/bin/env node
// The `flotilla` command: the server processes and Heroku's client grammar.
import { isFlotillaError } from '@flotilla/core';
import { buildProgram } from './program.js';

// `flotilla logs | head`: once the reader of a client command's output is gone, stop quietly,
// as Unix tools do (an unhandled EPIPE printed Node's stack trace). A one-off still running is
// stopped by the server when this call goes away. The server processes shut down as they do.
if (!['server', 'host', 'router'].includes(process.argv[2] ?? ''))
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (isFlotillaError(err)) {
    process.stderr.write(` !    ${err.message}\n`);
    process.exitCode = 1;
  } else throw err;
}
