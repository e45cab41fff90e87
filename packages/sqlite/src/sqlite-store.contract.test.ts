import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@flotilla/core';
import { runStoreContract } from '@flotilla/store/testing';
import { afterAll } from 'vitest';
import { SqliteStore } from './sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-sqlite-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const nextPath = (): string => join(dir, `store-${++n}.db`);

let clock = new ManualClock();
runStoreContract({
  name: 'SqliteStore (manual clock)',
  create: () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1));
    return new SqliteStore({ path: nextPath(), clock });
  },
  advanceTime: (ms) => clock.advance(ms),
});

runStoreContract({
  name: 'SqliteStore (system clock)',
  create: () => new SqliteStore({ path: nextPath() }),
  createWithHistoryLimit: (historyLimit) => new SqliteStore({ path: nextPath(), historyLimit }),
  leaseTtlMs: 300,
});
