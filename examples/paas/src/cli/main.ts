#!/usr/bin/env node
// The `flotilla` command: the server processes and Heroku's client grammar.
import { isFlotillaError } from '@flotilla/core';
import { buildProgram } from './program.js';

// `flotilla logs | head`: once the reader of a client command's output is gone, stop quietly,
// as Unix tools do (an unhandled EPIPE printed Node's stack trace). A one-off still running is
// stopped by the server when this call goes away. The server processes shut down as they do.
const client = !['server', 'host', 'router'].includes(process.argv[2] ?? '');
if (client)
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });

// A client command still waiting when nothing is left to wake it: the API answer it waits for
// can no longer come. Seen once in CI: `logs -t` with the server SIGKILLed just as the stream
// opened ended with Node's code 13 (an unsettled top-level await) and no message, instead of
// an error from fetch. Say what happened, as for any other lost connection.
let finished = false;
if (client)
  process.once('beforeExit', () => {
    if (finished) return;
    process.stderr.write(
      ' !    the connection to the Flotilla API was lost before it answered: is `flotilla server` still running?\n',
    );
    process.exit(1);
  });

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (isFlotillaError(err)) {
    process.stderr.write(` !    ${err.message}\n`);
    process.exitCode = 1;
  } else throw err;
} finally {
  finished = true;
}
