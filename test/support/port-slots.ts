// Job port ranges for tests that run host agents (ProcessDriver jobs bind ports the agent hands
// out without checking that they are free). Test files run in parallel worker processes, so a
// range that was free when one file probed it could be handed to a job of another file a moment
// later: a dyno of one suite once answered another suite's router, and a job that finds its port
// taken crashes. Every range comes from a slot of 100 ports that one process holds through a lock
// file (exclusive create) in a directory every suite shares: no two processes ever hand out the
// same port. Slots lie below the kernel's ephemeral range (32768-60999), where outgoing
// connections, etcd and the servers' port-0 listeners take theirs.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** The directory of the slots' lock files (a file per slot, holding its owner's pid). */
export const SLOTS_DIR = join(tmpdir(), 'flotilla-e2e-port-slots');
/** Ports per slot. */
export const SLOT_SIZE = 100;
const SLOTS = 120;
const BASE = 20_000;

/** A slot this process holds: ports `from` to `from + SLOT_SIZE - 1`. */
export interface PortSlot {
  readonly index: number;
  readonly from: number;
  /** Gives the slot back (idempotent); slots still held are given back when the process exits. */
  release(): void;
}

const held = new Map<number, string>();
/** The slot ranges are handed out of, and the next port in it not handed out yet. */
let current: { slot: PortSlot; next: number } | undefined;

/** Gives back every slot this process holds. */
function releaseAll(): void {
  for (const file of held.values()) rmSync(file, { force: true });
  held.clear();
  current = undefined;
}
// Given back when the test file that imported this ends (vitest ends its worker processes with a
// signal, so an 'exit' handler alone left them to be taken over from a dead pid), and at exit.
afterAll(releaseAll);
process.once('exit', releaseAll);

/** Whether a process runs (a zombie, killed and not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function take(file: string): boolean {
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

function owner(file: string): number {
  try {
    return Number.parseInt(readFileSync(file, 'utf8'), 10) || 0; // 0: empty, or not a pid
  } catch {
    return 0;
  }
}

/** Whether `path` was last written more than 10 s ago (false when it is not there). */
function stale(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > 10_000;
  } catch {
    return false;
  }
}

/**
 * Takes over a slot whose owner process is gone (or whose lock file stayed empty: its process
 * died between creating and writing it). Two processes could both see it gone, and the second's
 * remove would delete the first's new lock: a directory made beside it (exclusive) lets one of
 * them at a time look and take over; one left by a process that died meanwhile goes when stale.
 */
function takeOver(file: string): boolean {
  const dead = owner(file);
  if (dead === process.pid || (dead > 0 && alive(dead)) || (dead <= 0 && !stale(file)))
    return false;
  const guard = `${file}.takeover`;
  try {
    mkdirSync(guard);
  } catch {
    // Another process is taking it over, or died doing so (then its guard goes, for next time).
    if (stale(guard)) rmSync(guard, { recursive: true, force: true });
    return false;
  }
  try {
    if (owner(file) !== dead) return false;
    rmSync(file, { force: true });
    return take(file);
  } finally {
    rmSync(guard, { recursive: true, force: true });
  }
}

/**
 * Claims a free slot for this process; a slot whose owner process is gone is taken over.
 * Throws when all 120 are held.
 */
export function claimPortSlot(): PortSlot {
  mkdirSync(SLOTS_DIR, { recursive: true });
  const start = Math.floor(Math.random() * SLOTS);
  for (let i = 0; i < SLOTS; i++) {
    const index = (start + i) % SLOTS;
    const file = join(SLOTS_DIR, String(index));
    if (!take(file) && !takeOver(file)) continue;
    held.set(index, file);
    return {
      index,
      from: BASE + index * SLOT_SIZE,
      release: () => {
        if (held.delete(index)) rmSync(file, { force: true });
      },
    };
  }
  throw new Error(`no free job port range: every slot in ${SLOTS_DIR} is held`);
}

async function bindable(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/**
 * `n` (at most {@link SLOT_SIZE}) consecutive loopback ports that no other test process can be
 * handed, and that this process has not handed out before: ranges are cut from the slots this
 * process holds, for its lifetime. Every port is checked free now (a foreign process may hold
 * one); a busy one is skipped.
 */
export async function claimPortRange(n: number): Promise<{ from: number; to: number }> {
  if (!Number.isInteger(n) || n < 1 || n > SLOT_SIZE)
    throw new RangeError(`a port range is 1 to ${SLOT_SIZE} ports, not ${n}`);
  for (let attempts = 0; attempts < SLOTS;) {
    if (current === undefined || current.next + n > current.slot.from + SLOT_SIZE) {
      current = { slot: claimPortSlot(), next: 0 };
      current.next = current.slot.from;
      attempts++;
    }
    const from = current.next;
    const servers: Server[] = [];
    let busy: number | undefined;
    for (let p = from; p < from + n; p++) {
      const s = await bindable(p);
      if (s === undefined) {
        busy = p;
        break;
      }
      servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (busy === undefined) {
      current.next = from + n;
      return { from, to: from + n - 1 };
    }
    current.next = busy + 1;
  }
  throw new Error(`no ${n} free ports in ${SLOTS} slots of ${SLOTS_DIR}`);
}
