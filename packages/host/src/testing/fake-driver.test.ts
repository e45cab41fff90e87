import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { jobEnv, type JobSpec } from '../job-spec.js';
import { FakeDriver } from './fake-driver.js';

const spec = (id: string, extra: Partial<JobSpec> = {}, port?: number): JobSpec => ({
  id,
  app: 'demo',
  release: 'v1',
  processType: 'web',
  index: 1,
  command: 'node server.js',
  cwd: '/tmp',
  env: jobEnv({
    jobId: id,
    app: 'demo',
    release: 'v1',
    processType: 'web',
    index: 1,
    ...(port === undefined ? {} : { port }),
  }),
  ...extra,
});

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('FakeDriver', () => {
  it('records specs, listens on PORT while a job runs, and reports exits and stops', async () => {
    await using driver = new FakeDriver();
    const port = 20000 + Math.floor(Math.random() * 12000);
    await driver.start(spec('a', {}, port));
    expect(driver.specs.map((s) => s.id)).toEqual(['a']);
    expect(await accepts(port)).toBe(true);
    const exited = driver.wait('a');
    driver.exit('a', 3);
    expect(await exited).toMatchObject({ code: 3, reason: 'exited' });
    expect(await accepts(port)).toBe(false);
    expect((await driver.inspect('a')).state).toBe('exited');
    await driver.start(spec('b'));
    expect(await driver.stop('b')).toMatchObject({ reason: 'stopped', signal: 'SIGTERM' });
    expect(await driver.list()).toEqual([]);
    await driver.remove('a');
    await expect(driver.inspect('a')).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_NOT_FOUND',
    });
  });

  it('refuses what real drivers refuse, with their codes', async () => {
    const driver = new FakeDriver();
    await expect(driver.start(spec('img', { image: 'demo:v1' }))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_SPEC',
    });
    await expect(driver.start(spec('a/b'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_INVALID_SPEC',
    });
    await driver.start(spec('x'));
    await expect(driver.start(spec('x'))).rejects.toMatchObject({
      code: 'FLOTILLA_HOST_JOB_EXISTS',
    });
    await expect(driver.remove('x')).rejects.toMatchObject({ code: 'FLOTILLA_HOST_JOB_RUNNING' });
    const waiting = driver.wait('x');
    await driver.close();
    expect(await waiting).toMatchObject({ reason: 'lost' });
    await driver.close(); // idempotent
    await expect(driver.list()).rejects.toMatchObject({ code: 'FLOTILLA_HOST_CLOSED' });
    expect(driver.specs).toHaveLength(1);
    const images = new FakeDriver({ runsImages: true });
    await images.start(spec('img', { image: 'demo:v1' }));
    expect(images.specs[0]?.image).toBe('demo:v1');
    await images.close();
  });
});
