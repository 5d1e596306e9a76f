// What global-setup.ts started, and small helpers shared by the specs.
import { expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ids from './ids';

export function baseUrl(): string {
  const u = process.env.PM_BASE_URL;
  if (!u) throw new Error('PM_BASE_URL not set: global-setup did not run');
  return u;
}

export function url(path: string): string {
  return baseUrl() + path;
}

export function setupUrl(): string {
  const u = process.env.PM_SETUP_URL;
  if (!u) throw new Error('PM_SETUP_URL not set: global-setup did not run');
  return u;
}

/** Waits until the WASM has hydrated the page (an effect sets the attribute on <body>). */
export async function hydrated(page: Page): Promise<void> {
  await expect(page.locator(`body[${ids.HYDRATED_ATTR}="true"]`)).toHaveCount(1, { timeout: 30_000 });
}

export function byId(page: Page, id: string) {
  return page.locator(`[id="${id}"]`);
}

/** Saves a screenshot when PM_E2E_SCREENSHOTS names a folder (for looking at the UI). */
export async function shot(page: Page, name: string): Promise<void> {
  const dir = process.env.PM_E2E_SCREENSHOTS;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png` });
}

/**
 * Collects uncaught page errors and console errors (a failed hydration shows up here);
 * call the returned function at the end of a test to assert there were none.
 */
export function watchErrors(page: Page): () => void {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs every 4xx answer (a refused password, say) as a console error.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  return () => expect(errors, 'errors in the browser').toEqual([]);
}

/** Runs `patch-manager --config <the test config> ARGS` against the running server's data dir
 * and database (what an operator does on the server's shell). Throws with stderr on failure. */
export function pmCli(args: string[], input?: string): string {
  const bin = process.env.PM_SERVER_BIN;
  const config = process.env.PM_E2E_CONFIG;
  if (!bin || !config) throw new Error('global-setup did not run');
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (process.env.PM_E2E_DATABASE_URL) env.PM_DATABASE_URL = process.env.PM_E2E_DATABASE_URL;
  return execFileSync(bin, ['--config', config, ...args], { env, encoding: 'utf8', input, stdio: 'pipe', timeout: 60_000 });
}

/** Creates an administrator with the server's CLI (no second factor yet). */
export function createAdmin(username: string, password: string): void {
  const dir = process.env.PM_E2E_DIR;
  if (!dir) throw new Error('global-setup did not run');
  const pwFile = path.join(dir, `pw-${username}.txt`);
  fs.writeFileSync(pwFile, password + '\n', { mode: 0o600 });
  try {
    pmCli(['user', 'create-admin', '--username', username, '--password-file', pwFile]);
  } finally {
    fs.rmSync(pwFile, { force: true });
  }
}
