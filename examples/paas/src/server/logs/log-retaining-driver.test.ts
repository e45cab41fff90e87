import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobEnv, ProcessDriver } from '@flotilla/host';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogRetainingDriver } from './log-retaining-driver.js';

let dir: string;
let inner: ProcessDriver;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-retain-'));
  inner = await ProcessDriver.create({ stateDir: join(dir, 'jobs') });
});
afterEach(async () => {
  await inner.close();
  await rm(dir, { recursive: true, force: true });
});

const run = async (d: LogRetainingDriver, id: string, command: string): Promise<void> => {
  await d.start({
    id,
    app: 'demo',
    release: 'v1',
    processType: 'web',
    index: 1,
    command,
    cwd: dir,
    env: jobEnv({ jobId: id, app: 'demo', release: 'v1', processType: 'web', index: 1 }),
  });
  await d.wait(id);
};

const lines = async (d: LogRetainingDriver, id: string, tail?: number): Promise<string[]> => {
  const out: string[] = [];
  for await (const l of d.logs(id, tail === undefined ? {} : { tail }))
    if (l.stream !== 'system') out.push(l.line);
  return out;
};

describe('LogRetainingDriver', () => {
  it('keeps the last lines of a removed job, and forgets the oldest jobs past its bound', async () => {
    const d = new LogRetainingDriver(inner, 2);
    await run(d, 'a', 'echo one; echo two; echo three >&2; exit 1');
    await d.remove('a');
    await expect(inner.inspect('a')).rejects.toMatchObject({ code: 'FLOTILLA_HOST_JOB_NOT_FOUND' });
    expect((await lines(d, 'a')).sort()).toEqual(['one', 'three', 'two']);
    expect(await lines(d, 'a', 0)).toEqual([]);
    await run(d, 'b', 'echo b');
    await d.remove('b');
    await run(d, 'c', 'echo c');
    await d.remove('c');
    await expect(lines(d, 'a')).rejects.toMatchObject({ code: 'FLOTILLA_HOST_JOB_NOT_FOUND' });
    expect(await lines(d, 'c')).toEqual(['c']);
  });
});
