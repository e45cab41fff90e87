import type { Command } from 'commander';
import { MAX_LOG_LINES } from '../../server/api/schemas.js';
import { wholeNumber } from '../numbers.js';
import { appContext, appOption, p, type AppOptions } from './context.js';

/** `logs [-t] [-n N] [-p type] [-d dyno]`. */
export function logCommands(program: Command): void {
  appOption(program.command('logs'))
    .description("show an app's logs, from every dyno")
    .option('-n, --num <lines>', 'how many of the newest lines', '100')
    .option('-t, --tail', 'keep following')
    .option('-p, --process-type <type>', 'only this process type (web)')
    .option('-d, --dyno <dyno>', 'only this dyno (web.1)')
    .action(
      async (
        o: AppOptions & { num: string; tail?: boolean; processType?: string; dyno?: string },
      ) => {
        const lines = wholeNumber(o.num, {
          option: '-n/--num',
          what: 'a number of lines',
          min: 0,
          max: MAX_LOG_LINES,
          example: '-n 200',
        });
        const { api, app } = await appContext(o);
        const q = new URLSearchParams({ lines: String(lines), tail: o.tail ? 'true' : 'false' });
        if (o.processType !== undefined) q.set('type', o.processType);
        if (o.dyno !== undefined) q.set('dyno', o.dyno);
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        try {
          for await (const line of api.lines(
            'GET',
            `/apps/${p(app)}/log-stream?${q}`,
            undefined,
            ac.signal,
          ))
            process.stdout.write(line + '\n');
        } catch (err) {
          if (!ac.signal.aborted) throw err;
        }
      },
    );
}
