// Steps that run without a cgroup are found again after their builder was SIGKILLed through a
// record each leaves in a directory of this host: the builder's pid and host, and the step's
// process group (the step leads its session and process group, so the group's id is its pid)
// with the start time of its leader. The next step on this host that runs without a cgroup
// (or the reference server's start-up sweep) kills the groups of builders that are gone.
import { lstatSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@flotilla/core';
import { hostTag, taggedOwnerGone } from './owner.js';
import { killSessionTree, processStart } from './proc-tree.js';

/** Where step records go by default: one directory per user of this host. */
export function defaultStepsDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `flotilla-build-steps-${uid}`);
}

/**
 * Whether `dir` is a directory of this user that no one else may write (made so when missing):
 * a record names process groups to kill, so only this user's own records are believed. The
 * default lives in the shared temp directory, where another user could have made it first.
 */
function ownDir(dir: string, logger: Logger, create: boolean): boolean {
  try {
    // Not recursive: Node's recursive mkdir never returns where mkdir says ENOENT under a
    // parent that exists (a stepsDir under /proc hung the builder). The parent must exist.
    if (create) {
      try {
        mkdirSync(dir, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    const st = lstatSync(dir);
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0) return true;
    logger.warn(
      { dir },
      "the build step records directory is not this user's alone (owner, mode 0700): steps are not recorded there, nor swept; give LocalExecutor a stepsDir of your own",
    );
  } catch (err) {
    if (create || (err as NodeJS.ErrnoException).code !== 'ENOENT')
      logger.warn({ err, dir }, 'cannot use the build step records directory');
  }
  return false;
}

interface StepRecord {
  readonly builder: number;
  readonly host: string;
  readonly pgid: number;
  readonly start: string;
}

const NAME = /^step-\d+-[0-9a-f]{8}-\d+\.json$/;

/**
 * Records a running step (synchronously: right after its spawn, so that a SIGKILL of the builder
 * a moment later still finds it). Returns the function that forgets it once the step's
 * processes are gone; undefined when no record could be written (logged).
 */
export function recordStep(dir: string, pgid: number, logger: Logger): (() => void) | undefined {
  const start = processStart(pgid);
  if (start === undefined) return undefined; // ended already: nothing to find later
  const record: StepRecord = { builder: process.pid, host: hostTag(), pgid, start };
  const file = join(dir, `step-${process.pid}-${record.host}-${pgid}.json`);
  if (!ownDir(dir, logger, true)) return undefined;
  try {
    writeFileSync(file, JSON.stringify(record), { mode: 0o600 });
  } catch (err) {
    logger.warn({ err, dir }, 'cannot record a build step for a later sweep');
    return undefined;
  }
  return () => {
    try {
      unlinkSync(file);
    } catch {
      // gone already (a sweep took it)
    }
  };
}

/**
 * Kills the process groups (and sessions, and their descendants) of steps recorded in `dir`
 * whose builder, on this host, is gone; removes their records. A record whose leader pid now
 * names another process (started at another time) is dropped without a kill. Never throws.
 */
export async function sweepStepRecords(dir: string, logger: Logger): Promise<void> {
  if (!ownDir(dir, logger, false)) return;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!NAME.test(name)) continue;
    const file = join(dir, name);
    let record: StepRecord;
    try {
      record = parse(await readFile(file, 'utf8'));
    } catch (err) {
      // Our own directory: a record that cannot be read would never be swept; say so, drop it.
      logger.warn({ err, file }, 'a build step record cannot be read: removing it');
      await unlink(file).catch(() => undefined);
      continue;
    }
    if (!taggedOwnerGone(record.builder, record.host)) continue;
    // The leader's pid reused by another process: the step's group is gone (a pid is never
    // reused while a group or session of that id has members), and nothing is killed.
    if (await killSessionTree(record.pgid, record.start)) {
      logger.warn(
        { pgid: record.pgid, builder: record.builder },
        'killed a build step whose builder is gone',
      );
    }
    await unlink(file).catch(() => undefined);
  }
}

function parse(text: string): StepRecord {
  const o = JSON.parse(text) as Record<string, unknown>;
  const int = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 1;
  if (
    !int(o['builder']) ||
    !int(o['pgid']) ||
    typeof o['host'] !== 'string' ||
    typeof o['start'] !== 'string'
  )
    throw new Error(`not a step record: ${text.slice(0, 200)}`);
  return { builder: o['builder'], pgid: o['pgid'], host: o['host'], start: o['start'] };
}
