import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { PaasError, PaasErrorCodes } from '../../errors.js';
import { ApiClient } from '../client.js';
import { DEFAULT_URL, saveLogin } from '../credentials.js';

/** `login`: checks a URL and token against the server and saves them. */
export function loginCommands(program: Command): void {
  program
    .command('login')
    .description('save the API URL and token the other commands use')
    .option('--url <url>', 'the API URL', process.env.FLOTILLA_URL ?? DEFAULT_URL)
    .option('--token <token>', 'the token (default: read from stdin)')
    .option('--token-file <file>', 'read the token from this file (the server prints where it is)')
    .action(async (o: { url: string; token?: string; tokenFile?: string }) => {
      let token = o.token;
      if (token === undefined && o.tokenFile !== undefined) {
        const file = o.tokenFile;
        token = (
          await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new PaasError(
              PaasErrorCodes.DATA_DIR,
              `cannot read the token file ${file} (${err.code ?? err.message}): give the file the server printed at its start (<data dir>/token)`,
              { cause: err },
            );
          })
        ).trim();
      }
      if (token === undefined) {
        process.stderr.write('Token: ');
        for await (const line of createInterface({ input: process.stdin })) {
          token = line.trim();
          break;
        }
      }
      if (token === undefined || token === '')
        throw new PaasError(
          PaasErrorCodes.INVALID_REQUEST,
          'no token given: --token, --token-file or stdin',
        );
      const url = o.url.replace(/\/+$/, '');
      await new ApiClient({ url, token }).get('/hosts');
      const path = await saveLogin(url, token);
      process.stdout.write(`Logged in to ${url} (saved in ${path})\n`);
    });
}
