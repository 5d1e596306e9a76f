// Accounts for specs that need their own users: an admin made with the server's CLI (the same
// `patch-manager user create-admin` an operator would run), the sign-in steps of the UI
// (password, then TOTP enrolment on first sign-in or a TOTP code later), and real agents.
import { expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ids from './ids';
import { byId, createAdmin, hydrated, url } from './server';
import { freshCode } from './totp';

export interface Account {
  username: string;
  password: string;
  /** Base32 TOTP secret, once enrolled. */
  secret: string;
  /** The TOTP step last used (a code is accepted once). */
  usedStep: number;
}

/** A new admin account (no second factor yet) with a unique name, made with the CLI. */
export function newAdmin(prefix: string): Account {
  const username = `${prefix}-${Date.now().toString(36)}`;
  const password = `pw ${username} long enough`;
  createAdmin(username, password);
  return { username, password, secret: '', usedStep: -1 };
}

/**
 * Signs `account` in: password step, then either TOTP enrolment (first sign-in: the secret is
 * read from the page and stored in `account`) or a fresh TOTP code. Ends on the hosts page.
 */
export async function signIn(page: Page, account: Account): Promise<void> {
  await page.goto(url(ids.ROUTE_LOGIN));
  await hydrated(page);
  await byId(page, ids.LOGIN_USERNAME).fill(account.username);
  await byId(page, ids.LOGIN_PASSWORD).fill(account.password);
  await byId(page, ids.LOGIN_SUBMIT).click();
  if (!account.secret) {
    await expect(byId(page, ids.TOTP_SECRET)).toBeVisible();
    account.secret = ((await byId(page, ids.TOTP_SECRET).textContent()) ?? '').trim();
    const { code, step } = await freshCode(account.secret);
    account.usedStep = step;
    await byId(page, ids.TOTP_ENROL_CODE).fill(code);
    await byId(page, ids.TOTP_ENROL_SUBMIT).click();
    // The one-time recovery codes are shown once; the user confirms having kept them.
    await expect(byId(page, ids.RECOVERY_CODES).locator('li')).toHaveCount(10);
    await byId(page, ids.RECOVERY_CONTINUE).click();
  } else {
    await expect(byId(page, ids.TOTP_CODE)).toBeVisible();
    const { code, step } = await freshCode(account.secret, account.usedStep);
    account.usedStep = step;
    await byId(page, ids.TOTP_CODE).fill(code);
    await byId(page, ids.TOTP_SUBMIT).click();
  }
  await page.waitForURL((u) => u.pathname === ids.ROUTE_HOSTS);
  await hydrated(page);
  await expect(byId(page, ids.NAV_USER)).toHaveText(account.username);
}

/** Enrolls the real agent with `token` into a new state dir and checks in once (with `env`
 * added to the environment). */
export function enrollAgent(
  agentCommand: string,
  label: string,
  env: NodeJS.ProcessEnv = {},
): { hostId: string; stateDir: string } {
  const agentBin = process.env.PM_AGENT_BIN!;
  const stateDir = fs.mkdtempSync(path.join(process.env.PM_E2E_DIR!, `agent-${label}-`));
  const args = agentCommand.split(/\s+/).slice(1);
  const out = execFileSync(agentBin, [...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 });
  const m = out.match(/enrolled as host (\S+)/);
  if (!m) throw new Error(`no host id in the agent's output: ${out}`);
  execFileSync(agentBin, ['run', '--once', '--state-dir', stateDir], {
    env: { ...process.env, ...env },
    stdio: 'inherit',
    timeout: 180_000,
  });
  return { hostId: m[1], stateDir };
}
