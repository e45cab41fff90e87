import { availableParallelism, totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseStoreUrl, resolveServerConfig, urlHost } from './config.js';

describe('resolveServerConfig', () => {
  it('takes flags over FLOTILLA_* variables over the embedded defaults', () => {
    const env = {
      FLOTILLA_API_PORT: '7800',
      FLOTILLA_ROUTER_PORT: '9090',
      FLOTILLA_DATA_DIR: '/tmp/x',
    };
    const c = resolveServerConfig({ apiPort: '7900' }, env);
    expect(c.apiPort).toBe(7900);
    expect(c.routerPort).toBe(9090);
    expect(c.dataDir).toBe('/tmp/x');
    const d = resolveServerConfig({}, {});
    expect(d).toMatchObject({
      apiPort: 7700,
      routerPort: 8080,
      apiHost: '127.0.0.1',
      driver: 'process',
    });
    expect(d.store).toEqual({ kind: 'sqlite', path: `${d.dataDir}/state.db` });
  });

  it('reads an empty port variable as unset (the default), not as 0 (any free port)', () => {
    const c = resolveServerConfig({}, { FLOTILLA_API_PORT: '', FLOTILLA_ROUTER_PORT: '' });
    expect(c.apiPort).toBe(7700);
    expect(c.routerPort).toBe(8080);
  });

  it.each([
    [
      { apiPort: '70000' },
      /^--api-port \(FLOTILLA_API_PORT\) "70000": must be 0 \(any free port\) to 65535$/,
    ],
    [{ apiPort: 'abc' }, /^--api-port \(FLOTILLA_API_PORT\) "abc": must be a port number$/],
    // Not numbers, though z.coerce took them ('' as 0: any free port).
    [{ apiPort: '' }, /^--api-port \(FLOTILLA_API_PORT\) "": must be a port number$/],
    [{ routerPort: ' 5' }, /^--router-port \(FLOTILLA_ROUTER_PORT\) " 5": must be a port number$/],
    [{ hostCpu: '0x10' }, /^--host-cpu \(FLOTILLA_HOST_CPU\) "0x10": must be a number of CPU/],
    [
      { hostMemory: '1e3' },
      /^--host-memory \(FLOTILLA_HOST_MEMORY\) "1e3": must be a number of MiB$/,
    ],
    [
      { deployMinHealthy: '' },
      /^--deploy-min-healthy \(FLOTILLA_DEPLOY_MIN_HEALTHY_MS\) "": must be a number of ms$/,
    ],
    [{ routerPort: '-1' }, /^--router-port \(FLOTILLA_ROUTER_PORT\) "-1": must be 0/],
    [{ driver: 'kvm' }, /^--driver \(FLOTILLA_DRIVER\) "kvm": must be process or docker/],
    [{ hostId: 'a/b' }, /^--host-id \(FLOTILLA_HOST_ID\) "a\/b": must be a DNS label/],
    [{ jobPorts: '9000-80' }, /^--job-ports \(FLOTILLA_JOB_PORTS\) "9000-80": /],
    [{ dataDir: 'a\0b' }, /^--data-dir \(FLOTILLA_DATA_DIR\) "a\\u0000b": must not contain NUL/],
    [{ hostCpu: '0' }, /^--host-cpu \(FLOTILLA_HOST_CPU\) "0": must be at least 1/],
    [{ hostCpu: '1.5' }, /^--host-cpu \(FLOTILLA_HOST_CPU\) "1\.5": must be a whole number/],
    [
      { hostCpu: 'lots' },
      /^--host-cpu \(FLOTILLA_HOST_CPU\) "lots": must be a number of CPU millis \(1000 per core\)$/,
    ],
    [
      { hostMemory: '-5' },
      /^--host-memory \(FLOTILLA_HOST_MEMORY\) "-5": must be at least 1 \(MiB\)$/,
    ],
    [
      { deployMinHealthy: '60000' },
      /^--deploy-min-healthy \(FLOTILLA_DEPLOY_MIN_HEALTHY_MS\) "60000": must be below 60000 ms/,
    ],
    [
      { deployMinHealthy: 'soon' },
      /^--deploy-min-healthy \(FLOTILLA_DEPLOY_MIN_HEALTHY_MS\) "soon": must be a number of ms$/,
    ],
  ])('refuses %o with a message naming the option', (flags, message) => {
    expect(() => resolveServerConfig(flags, {})).toThrow(message);
    try {
      resolveServerConfig(flags, {});
    } catch (err) {
      expect(err).toMatchObject({ code: 'FLOTILLA_PAAS_INVALID_OPTIONS' });
    }
  });
});

describe('how long a new dyno must stay up in a deploy', () => {
  it('is --deploy-min-healthy (or FLOTILLA_DEPLOY_MIN_HEALTHY_MS), else 0', () => {
    expect(resolveServerConfig({}, {}).deployMinHealthyMs).toBe(0);
    expect(resolveServerConfig({ deployMinHealthy: '2000' }, {}).deployMinHealthyMs).toBe(2000);
    expect(
      resolveServerConfig({}, { FLOTILLA_DEPLOY_MIN_HEALTHY_MS: '1500' }).deployMinHealthyMs,
    ).toBe(1500);
  });
});

describe("the host's capacity", () => {
  it('is --host-cpu/--host-memory (or FLOTILLA_HOST_*), else per core: 4000 for local processes, 1000 for Docker', () => {
    const cores = availableParallelism();
    expect(resolveServerConfig({}, {}).capacity.cpu).toBe(cores * 4000);
    expect(resolveServerConfig({ driver: 'docker' }, {}).capacity.cpu).toBe(cores * 1000);
    expect(resolveServerConfig({}, {}).capacity.memory).toBe(Math.floor(totalmem() / 2 ** 20));
    expect(resolveServerConfig({ hostCpu: '1500', hostMemory: '2048' }, {}).capacity).toEqual({
      cpu: 1500,
      memory: 2048,
    });
    expect(
      resolveServerConfig({}, { FLOTILLA_HOST_CPU: '750', FLOTILLA_HOST_MEMORY: '100' }).capacity,
    ).toEqual({ cpu: 750, memory: 100 });
  });
});

describe('the address a server or host advertises', () => {
  const etcd = { store: 'etcd://127.0.0.1:2379' };
  const hostOnly = { api: false, scheduler: false, host: true, router: false };

  it('is --advertise-host (or FLOTILLA_ADVERTISE_HOST) when given, else none: the API address is', () => {
    expect(resolveServerConfig({}, {}).advertiseHost).toBeUndefined();
    expect(resolveServerConfig({ advertiseHost: '10.0.0.7' }, {}).advertiseHost).toBe('10.0.0.7');
    expect(
      resolveServerConfig(
        { ...etcd, apiHost: '0.0.0.0' },
        { FLOTILLA_ADVERTISE_HOST: 'node-2.lan' },
      ).advertiseHost,
    ).toBe('node-2.lan');
  });

  it('refuses a cluster server or host listening on every interface with none: others could not dial it', () => {
    for (const apiHost of ['0.0.0.0', '::']) {
      for (const roles of [undefined, hostOnly]) {
        expect(() => resolveServerConfig({ ...etcd, apiHost }, {}, roles)).toThrow(
          expect.objectContaining({
            code: 'FLOTILLA_PAAS_INVALID_OPTIONS',
            message: expect.stringContaining('--advertise-host') as unknown,
          }),
        );
      }
    }
    // A router alone registers no address anyone dials: it may listen everywhere.
    const router = { api: false, scheduler: false, host: false, router: true };
    expect(() =>
      resolveServerConfig({ ...etcd, apiHost: '0.0.0.0', routerHost: '0.0.0.0' }, {}, router),
    ).not.toThrow();
  });

  it('is loopback on one machine (SQLite) listening on every interface', () => {
    expect(resolveServerConfig({ apiHost: '0.0.0.0' }, {}).advertiseHost).toBe('127.0.0.1');
  });

  it.each([
    '0.0.0.0',
    '::',
    '[::]',
    'a b',
    'x/y',
    '',
    'node-2:7700',
    '10.0.0.7:7700',
    '-x',
    '1.2.3',
  ])('refuses --advertise-host %j', (advertiseHost) => {
    expect(() => resolveServerConfig({ advertiseHost }, {})).toThrow(
      /^--advertise-host \(FLOTILLA_ADVERTISE_HOST\) ".*": must be/,
    );
  });

  it('takes an IPv6 address with or without brackets, and writes it bracketed in URLs', () => {
    expect(resolveServerConfig({ advertiseHost: '[fd00::7]' }, {}).advertiseHost).toBe('fd00::7');
    expect(resolveServerConfig({ advertiseHost: 'fd00::7' }, {}).advertiseHost).toBe('fd00::7');
    expect(urlHost('fd00::7')).toBe('[fd00::7]');
    expect(urlHost('10.0.0.7')).toBe('10.0.0.7');
  });
});

describe('parseStoreUrl', () => {
  it('reads etcd endpoints and a prefix', () => {
    expect(parseStoreUrl('etcd://127.0.0.1:2379,127.0.0.1:2380/paas', '/d')).toEqual({
      kind: 'etcd',
      endpoints: ['http://127.0.0.1:2379', 'http://127.0.0.1:2380'],
      prefix: '/paas/',
    });
    expect(parseStoreUrl('etcd://127.0.0.1:2379', '/d')).toMatchObject({ prefix: '/flotilla/' });
    expect(parseStoreUrl('sqlite:/var/x.db', '/d')).toEqual({ kind: 'sqlite', path: '/var/x.db' });
  });

  it.each([
    'etcd://',
    'etcd://host',
    'redis://x:1',
    'etcd://a:1,,b:2',
    'etcd://a:99999',
    'etcd://a:0',
  ])('refuses %s', (url) => {
    expect(() => parseStoreUrl(url, '/d')).toThrow(
      expect.objectContaining({ code: 'FLOTILLA_PAAS_INVALID_OPTIONS' }),
    );
  });
});
