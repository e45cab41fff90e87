// The `pre-receive` hook of every app repository: git runs it after the pushed objects arrived
// and before any ref moves. For a push to main or master it sends `git archive` of the pushed
// commit to the server (over loopback, with the server's token, both given by the server in the
// environment of `git http-backend`), prints the build and deploy output as it streams back
// (git relays it to `git push` as `remote:` lines), and exits 1 when the deploy failed, so the
// push is refused and the branch keeps the commit that serves. As on Heroku.
import { execFile, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { parseDeployLine } from './protocol.js';

const ZERO = /^0+$/;
const DEPLOY_REFS = new Set(['refs/heads/main', 'refs/heads/master']);

async function main(): Promise<number> {
  const url = process.env.FLOTILLA_HOOK_URL;
  const token = process.env.FLOTILLA_HOOK_TOKEN;
  if (url === undefined || token === undefined) {
    console.log('flotilla: this repository is only pushed to through the flotilla server');
    return 1;
  }
  const updates: { old: string; sha: string; ref: string }[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    const [old, sha, ref] = line.trim().split(' ');
    if (old && sha && ref) updates.push({ old, sha, ref });
  }
  const deploys = updates.filter((u) => DEPLOY_REFS.has(u.ref));
  for (const u of updates) {
    if (!DEPLOY_REFS.has(u.ref))
      console.log(
        ZERO.test(u.sha)
          ? `flotilla: ${u.ref} is deleted (only main or master deploy: nothing changes)`
          : `flotilla: ${u.ref} is stored, not deployed: push to main or master to deploy`,
      );
  }
  if (deploys.length > 1) {
    console.log('flotilla: push main or master, not both at once');
    return 1;
  }
  const d = deploys[0];
  if (d === undefined) return 0;
  if (ZERO.test(d.sha)) {
    console.log(`flotilla: ${d.ref} is what deploys: it cannot be deleted`);
    return 1;
  }
  // Pushes of an app take turns (the server holds a lock per app): main is where the last push
  // left it. A push made from an older main would deploy what main does not have.
  const current = await revParse(d.ref);
  if (current !== (ZERO.test(d.old) ? undefined : d.old)) {
    console.log(
      `flotilla: ${d.ref} was pushed meanwhile: pull (or fetch and rebase), then push again`,
    );
    return 1;
  }
  return deploy(url, token, d.sha, d.ref);
}

function revParse(ref: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', ['rev-parse', '--verify', '--quiet', ref], (err, stdout) =>
      resolve(err === null ? stdout.trim() : undefined),
    );
  });
}

function deploy(url: string, token: string, sha: string, ref: string): Promise<number> {
  return new Promise((resolve) => {
    const archive = spawn('git', ['archive', '--format=tar', sha], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const req = request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-tar',
        'x-flotilla-commit': sha,
        'x-flotilla-ref': ref,
      },
    });
    let result: number | undefined;
    req.on('response', (res) => {
      const rl = createInterface({ input: res });
      rl.on('line', (line) => {
        const msg = parseDeployLine(line);
        if (msg === undefined) return;
        if (msg.kind === 'output') process.stdout.write(`${msg.line}\n`);
        else {
          result = msg.ok ? 0 : 1;
          process.stdout.write(`${msg.message}\n`);
        }
      });
      rl.on('close', () => {
        if (result === undefined) {
          process.stdout.write(
            res.statusCode === 200
              ? 'flotilla: the server ended the deploy without a result: see `flotilla releases`\n'
              : `flotilla: the server refused the deploy (HTTP ${res.statusCode})\n`,
          );
        }
        resolve(result ?? 1);
      });
    });
    req.on('error', (err) => {
      process.stdout.write(`flotilla: cannot reach the server: ${err.message}\n`);
      resolve(1);
    });
    archive.stdout.pipe(req);
    archive.on('close', (code) => {
      if (code !== 0) {
        process.stdout.write(`flotilla: git archive ${sha} failed\n`);
        req.destroy();
      }
    });
  });
}

process.exitCode = await main();
