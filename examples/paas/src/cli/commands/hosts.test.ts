// `hosts:drain --deadline` durations and the DRAIN column of `hosts`.
import { MAX_DRAIN_DEADLINE_MS } from '@flotilla/cluster';
import { describe, expect, it } from 'vitest';
import { drainColumn, drainingNotes, parseDuration } from './hosts.js';

describe('parseDuration (hosts:drain --deadline)', () => {
  it('reads numbers with units, alone or in a row, as ms', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('365d')).toBe(MAX_DRAIN_DEADLINE_MS);
  });

  it('refuses what is not a duration from 1ms to 365d, saying what to give', () => {
    for (const bad of [
      '',
      '10',
      'm',
      '10 m',
      '-5m',
      '0s',
      '0.1ms',
      '10x',
      '1h30',
      '366d',
      '9'.repeat(400) + 'd',
      'NaNm',
      '10m\0',
      '1e3s',
    ]) {
      expect(() => parseDuration(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({
          code: 'FLOTILLA_PAAS_INVALID_REQUEST',
          message: expect.stringContaining('give a number with its unit, such as 10m'),
        }),
      );
    }
  });
});

describe('drainColumn (hosts)', () => {
  it('shows the deadline, and that it forced the rest once passed; nothing without one', () => {
    const at = Date.UTC(2026, 11, 2, 4, 10);
    expect(drainColumn({ drain: true, drain_deadline: at, drain_forced: false })).toBe(
      'deadline 2026-12-02T04:10:00Z',
    );
    expect(drainColumn({ drain: true, drain_deadline: at, drain_forced: true })).toBe(
      'deadline 2026-12-02T04:10:00Z passed: forced',
    );
    expect(drainColumn({ drain: true })).toBe('');
    expect(drainColumn({ drain: false })).toBe('');
  });
});

describe('drainingNotes (ps)', () => {
  const at = Date.UTC(2026, 11, 2, 4, 10);
  const dynos = [
    { name: 'web.1', host: 'a', state: 'up' },
    { name: 'web.2', host: 'b', state: 'up' },
    { name: 'web.3', host: 'b', state: 'starting' },
    { name: 'web.4', host: 'c', state: 'up' },
    { name: 'web.5', host: 'd', state: 'crashed' },
  ];

  it("names the app's dynos on each draining host, and when they stop: replaced, deadline, forced", () => {
    expect(
      drainingNotes(dynos, [
        { id: 'a', state: 'up' },
        { id: 'b', state: 'draining', drain_deadline: at, drain_forced: false },
        { id: 'c', state: 'draining' },
        { id: 'd', state: 'draining', drain_deadline: at, drain_forced: true },
        { id: 'e', state: 'draining', drain_deadline: at, drain_forced: true },
      ]),
    ).toBe(
      'web.2, web.3 on b, draining: each stops once its replacement is up elsewhere, or at its deadline 2026-12-02T04:10:00Z regardless\n' +
        'web.4 on c, draining: each stops once its replacement is up elsewhere (no deadline)\n',
    );
    expect(
      drainingNotes(dynos, [
        { id: 'b', state: 'draining', drain_deadline: at, drain_forced: true },
      ]),
    ).toBe(
      'web.2, web.3 on b, draining: its deadline 2026-12-02T04:10:00Z passed: stopped, replacements up or not (forced)\n',
    );
    expect(drainingNotes(dynos, [])).toBe('');
  });
});
