// Starts `target/release/patch-manager serve` on free loopback ports with a fresh data dir
// and SQLite, waits for the one-time setup URL it prints, and passes everything the tests
// need through environment variables (workers inherit them).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..');
export const STATE_FILE = path.join(__dirname, '.tmp', 'server.json');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export default async function globalSetup(): Promise<void> {
  const bin = path.join(REPO, 'target', 'release', 'patch-manager');
  const agent = path.join(REPO, 'target', 'release', 'pm-agent');
  const site = path.join(REPO, 'target', 'site');
  for (const f of [bin, agent, path.join(site, 'pkg', 'patch_manager.js')]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run .ci/build first`);
  }

  fs.mkdirSync(path.join(__dirname, '.tmp'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-e2e-'));
  const webPort = await freePort();
  let agentPort = await freePort();
  while (agentPort === webPort) agentPort = await freePort();

  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      `data_dir = ${JSON.stringify(path.join(dir, 'data'))}`,
      `web_listen = "127.0.0.1:${webPort}"`,
      `agent_listen = "127.0.0.1:${agentPort}"`,
      `public_url = "https://localhost:${webPort}"`,
      `agent_url = "https://localhost:${agentPort}"`,
      `site_dir = ${JSON.stringify(site)}`,
      '',
      '[tls]',
      'sans = ["localhost", "127.0.0.1"]',
      '',
    ].join('\n'),
  );

  // PM_TEST_DATABASE=postgres runs the same suite on a fresh PostgreSQL database (dropped in
  // teardown); the default is the embedded SQLite in the data dir.
  const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' };
  let pgDatabase: string | undefined;
  if (process.env.PM_TEST_DATABASE === 'postgres') {
    pgDatabase = `pm_e2e_${process.pid}_${Date.now()}`;
    execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qc', `CREATE DATABASE ${pgDatabase}`]);
    env.PM_DATABASE_URL = `postgres://postgres@127.0.0.1:5432/${pgDatabase}`;
  }

  const log = fs.openSync(path.join(dir, 'server.log'), 'a');
  const child = spawn(bin, ['--config', config, 'serve'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  let stdout = '';
  child.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString();
    fs.writeSync(log, b);
  });
  child.stderr!.on('data', (b: Buffer) => fs.writeSync(log, b));

  const setupUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup URL within 60 s; log: ${path.join(dir, 'server.log')}`)), 60_000);
    const check = () => {
      const m = stdout.match(/https:\/\/\S+\/setup\?token=\S+/);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`patch-manager exited early (${code}); log: ${path.join(dir, 'server.log')}`));
    });
    check();
  });

  // The setup URL is printed once the listeners are bound; still, wait for the port.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(webPort, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error('web listener did not come up');
    await new Promise((r) => setTimeout(r, 200));
  }

  const state = {
    pid: child.pid,
    dir,
    baseUrl: `https://localhost:${webPort}`,
    setupUrl,
    agentBin: agent,
    serverLog: path.join(dir, 'server.log'),
    pgDatabase,
  };
  fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
  process.env.PM_BASE_URL = state.baseUrl;
  process.env.PM_SETUP_URL = setupUrl;
  process.env.PM_E2E_DIR = dir;
  process.env.PM_AGENT_BIN = agent;
  // For specs that create accounts with the CLI (`patch-manager user create-admin`) against
  // the same data dir and database as the running server.
  process.env.PM_SERVER_BIN = bin;
  process.env.PM_E2E_CONFIG = config;
  if (env.PM_DATABASE_URL) process.env.PM_E2E_DATABASE_URL = env.PM_DATABASE_URL;
  // Keep the child from holding the runner open; teardown kills it by pid.
  child.unref();
  (child.stdout as any)?.unref?.();
  (child.stderr as any)?.unref?.();
}
