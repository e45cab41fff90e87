#!/usr/bin/env node
// The `flotilla` command: the server processes and Heroku's client grammar.
import { isFlotillaError } from '@flotilla/core';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (isFlotillaError(err)) {
    process.stderr.write(` !    ${err.message}\n`);
    process.exitCode = 1;
  } else throw err;
}
