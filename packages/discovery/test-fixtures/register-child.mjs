// A registrant in a process of its own, for SIGKILL tests and benchmarks.
//   node register-child.mjs <endpoints> <prefix> <service> <id> <ttlMs>
// Registers (ready) against etcd, prints "registered <id>" and waits to be killed.
import { Discovery } from '@flotilla/discovery';
import { EtcdStore } from '@flotilla/etcd';

const [endpoints, prefix, service, id, ttl] = process.argv.slice(2);
const store = new EtcdStore({ endpoints: endpoints.split(','), prefix });
const discovery = new Discovery({ store });
await discovery.register({ service, addr: '127.0.0.1:5001', id, ttlMs: Number(ttl), ready: true });
process.stdout.write(`registered ${id}\n`);
setInterval(() => undefined, 1 << 30);
