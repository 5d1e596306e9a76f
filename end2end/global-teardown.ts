import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { STATE_FILE } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(STATE_FILE)) return;
  const state = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as { pid?: number; dir?: string; pgDatabase?: string };
  if (state.pid) {
    try {
      process.kill(state.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    // Give it the graceful-shutdown window, then make sure.
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(state.pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      process.kill(state.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (state.pgDatabase) {
    execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${state.pgDatabase} WITH (FORCE)`]);
  }
  fs.rmSync(STATE_FILE, { force: true });
  if (state.dir && !process.env.PM_E2E_KEEP) fs.rmSync(state.dir, { recursive: true, force: true });
}
