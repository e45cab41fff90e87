// A child process for the SqliteStore tests: it uses the built package (run `npx tsc -b`
// first) and reports on stdout, one JSON object per line.
//
//   node store-child.mjs hold <path>       open the store, report {ready, pid}, hold it until
//                                          stdin closes, then close it and exit
//   node store-child.mjs try-open <path>   open the store and report {opened} or {error}
//   node store-child.mjs write <path>      write forever, reporting {ack} after each
//                                          acknowledged write (the parent SIGKILLs it)
//   node store-child.mjs lease <path> <ttlMs>
//                                          grant a lease, put keys on it, report {lease},
//                                          then wait to be killed
import { SqliteStore } from '../dist/index.js';

const [mode, path, arg] = process.argv.slice(2);
const report = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const untilStdinCloses = () =>
  new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.resume();
  });

switch (mode) {
  case 'hold': {
    const store = new SqliteStore({ path });
    await store.put('held/by', String(process.pid));
    report({ ready: true, pid: process.pid });
    await untilStdinCloses();
    await store.close();
    break;
  }
  case 'try-open': {
    try {
      const store = new SqliteStore({ path });
      report({ opened: true, revision: await store.revision() });
      await store.close();
    } catch (err) {
      report({ error: { code: err.code, message: err.message, pid: err.pid ?? null } });
    }
    break;
  }
  case 'write':
    await writeForever(
      new SqliteStore({ path, synchronous: arg === 'normal' ? 'normal' : 'full' }),
    );
    break;
  case 'lease': {
    const store = new SqliteStore({ path });
    const lease = await store.grant(Number(arg));
    await lease.keepAlive();
    await store.put('svc/a', 'up', { lease: lease.id });
    await store.put('svc/b', 'up', { lease: lease.id });
    const { revision } = await store.put('plain', 'stays');
    report({ lease: lease.id, revision });
    await untilStdinCloses();
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}

async function writeForever(store) {
  for (let i = 0; ; i++) {
    if (i % 5 === 4) {
      // A transaction: both keys or neither.
      const res = await store.txn({
        compare: [],
        success: [
          { op: 'put', key: `t/${i}/a`, value: `a${i}` },
          { op: 'put', key: `t/${i}/b`, value: `b${i}` },
        ],
      });
      report({ ack: 'txn', i, revision: res.revision });
    } else {
      const res = await store.put(`k/${i}`, `v${i}`);
      report({ ack: 'put', i, revision: res.revision });
    }
  }
}
