import type { LogLine } from '@flotilla/host';

/** A log line as Heroku prints it: `2026-12-01T16:05:45.123Z app[web.1]: listening`. */
export function formatLogLine(l: LogLine, dyno: string): string {
  const source = l.stream === 'system' ? 'flotilla' : 'app';
  return `${new Date(l.time).toISOString()} ${source}[${dyno}]: ${l.line}`;
}
