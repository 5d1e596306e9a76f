// The path a new administrator takes: first-run setup from the URL `serve` printed, password
// login with TOTP enrolment, a second login with password + TOTP, enrolling a real host with
// the real agent, and the host's inventory in the UI.
import { expect, test, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ids from './ids';
import { byId, hydrated, setupUrl, shot, url, watchErrors } from './server';
import { freshCode, totp } from './totp';

const USERNAME = 'admin';
const PASSWORD = 'correct horse battery staple';
// The commands agent/src/pkg/apt.rs documents for reproducing the counts the server shows.
const INSTALLED_CMD = `dpkg-query -W -f='\${db:Status-Abbrev}\\n' | grep -c '^.i'`;
const PENDING_CMD = `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -c '^Inst [^ ]* \\['`;
/** `PACKAGES_PER_PAGE` in app/src/api/hosts.rs. */
const PACKAGES_PER_PAGE = 100;

/** Runs a shell pipeline that ends in `grep -c` (exit 1 just means a count of 0). */
function count(pipeline: string): number {
  const out = execFileSync('bash', ['-c', `${pipeline} || true`], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return Number.parseInt(out.trim(), 10);
}

async function passwordStep(page: Page): Promise<void> {
  await page.goto(url(ids.ROUTE_LOGIN));
  await hydrated(page);
  await byId(page, ids.LOGIN_USERNAME).fill(USERNAME);
  await byId(page, ids.LOGIN_PASSWORD).fill(PASSWORD);
  await byId(page, ids.LOGIN_SUBMIT).click();
}

test('set up, log in with TOTP, enrol a host and see its inventory', async ({ page }) => {
  const noBrowserErrors = watchErrors(page);
  let secret = '';
  let usedStep = -1;

  await test.step('first-run setup creates the admin', async () => {
    await page.goto(setupUrl());
    await hydrated(page);
    await shot(page, '01-setup');
    await byId(page, ids.SETUP_USERNAME).fill(USERNAME);
    await byId(page, ids.SETUP_PASSWORD).fill(PASSWORD);
    await byId(page, ids.SETUP_PASSWORD2).fill(PASSWORD + 'x');
    await byId(page, ids.SETUP_SUBMIT).click();
    await expect(byId(page, ids.SETUP_ERROR)).toContainText('do not match');
    await byId(page, ids.SETUP_PASSWORD2).fill(PASSWORD);
    await byId(page, ids.SETUP_SUBMIT).click();
    await page.waitForURL((u) => u.pathname === ids.ROUTE_LOGIN);
  });

  await test.step('a wrong password is refused', async () => {
    await page.goto(url(ids.ROUTE_LOGIN));
    await hydrated(page);
    await byId(page, ids.LOGIN_USERNAME).fill(USERNAME);
    await byId(page, ids.LOGIN_PASSWORD).fill('not the password at all');
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/auth/login');
    await byId(page, ids.LOGIN_SUBMIT).click();
    expect((await answer).status()).toBe(401);
    await expect(byId(page, ids.LOGIN_ERROR)).toHaveText('authentication failed');
  });

  await test.step('password, then TOTP enrolment with the secret shown on the page', async () => {
    await passwordStep(page);
    await expect(byId(page, ids.TOTP_QR)).toHaveAttribute('src', /^data:image\/png;base64,/);
    secret = ((await byId(page, ids.TOTP_SECRET).textContent()) ?? '').trim();
    expect(secret).toMatch(/^[A-Z2-7]{16,}=*$/);
    await shot(page, '02-totp-enrol');
    const { code, step } = await freshCode(secret);
    usedStep = step;
    await byId(page, ids.TOTP_ENROL_CODE).fill(code);
    await byId(page, ids.TOTP_ENROL_SUBMIT).click();
    // The first factor comes with recovery codes, shown once before going on.
    await expect(byId(page, ids.RECOVERY_CODES).locator('li')).toHaveCount(10);
    await byId(page, ids.RECOVERY_CONTINUE).click();
    await page.waitForURL((u) => u.pathname === ids.ROUTE_HOSTS);
    await hydrated(page);
    await expect(byId(page, ids.NAV_USER)).toHaveText(USERNAME);
  });

  await test.step('log out', async () => {
    await byId(page, ids.LOGOUT_BUTTON).click();
    await page.waitForURL((u) => u.pathname === ids.ROUTE_LOGIN);
    await page.goto(url(ids.ROUTE_HOSTS));
    expect(new URL(page.url()).pathname).toBe(ids.ROUTE_LOGIN);
  });

  await test.step('log in again with password and a fresh TOTP code', async () => {
    await passwordStep(page);
    await expect(byId(page, ids.TOTP_CODE)).toBeVisible();
    // The enrolment code's step is spent: it must be refused even while still current.
    await byId(page, ids.TOTP_CODE).fill(totp(secret, usedStep));
    await byId(page, ids.TOTP_SUBMIT).click();
    await expect(byId(page, ids.LOGIN_ERROR)).toBeVisible();
    const { code } = await freshCode(secret, usedStep);
    await byId(page, ids.TOTP_CODE).fill(code);
    await byId(page, ids.TOTP_SUBMIT).click();
    await page.waitForURL((u) => u.pathname === ids.ROUTE_HOSTS);
    await hydrated(page);
    await expect(byId(page, ids.NAV_USER)).toHaveText(USERNAME);
    await page.goto(url('/'));
    expect(new URL(page.url()).pathname).toBe(ids.ROUTE_HOSTS);
  });

  let agentCommand = '';
  let fingerprint = '';
  await test.step('create an enrollment token', async () => {
    await page.goto(url(ids.ROUTE_ENROLL));
    await hydrated(page);
    await byId(page, ids.ENROLL_NOTE).fill('playwright host');
    await byId(page, ids.ENROLL_SUBMIT).click();
    await expect(byId(page, ids.AGENT_COMMAND)).toBeVisible();
    agentCommand = ((await byId(page, ids.AGENT_COMMAND).textContent()) ?? '').trim();
    fingerprint = ((await byId(page, ids.CA_FINGERPRINT).textContent()) ?? '').trim();
    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(agentCommand).toContain(fingerprint);
    expect(agentCommand).toMatch(/^pm-agent enroll /);
    await expect(byId(page, ids.TOKENS_TABLE)).toContainText('active');
    await shot(page, '03-enroll');
  });

  await test.step('the real agent enrolls and checks in', async () => {
    const agentBin = process.env.PM_AGENT_BIN!;
    const stateDir = fs.mkdtempSync(path.join(process.env.PM_E2E_DIR ?? os.tmpdir(), 'agent-'));
    const args = agentCommand.split(/\s+/).slice(1);
    execFileSync(agentBin, [...args, '--state-dir', stateDir], { stdio: 'inherit', timeout: 60_000 });
    execFileSync(agentBin, ['run', '--once', '--state-dir', stateDir], { stdio: 'inherit', timeout: 180_000 });
  });

  await test.step('the token is now used and points at the host', async () => {
    await page.goto(url(ids.ROUTE_ENROLL));
    await hydrated(page);
    const row = byId(page, ids.TOKENS_TABLE).locator('tbody tr').filter({ hasText: 'playwright host' });
    await expect(row).toContainText('used');
    await expect(row.locator('a[href^="/hosts/"]')).toHaveCount(1);
  });

  const hostname = os.hostname();
  await test.step('the host list shows the host online', async () => {
    await page.goto(url(ids.ROUTE_HOSTS));
    await hydrated(page);
    const row = byId(page, ids.HOST_ROW_PREFIX + hostname);
    await expect(row).toBeVisible();
    await expect(row.locator('.col-status')).toHaveText('online');
    await expect(byId(page, ids.PAGE_INFO)).toContainText('Page 1 of 1');
    await shot(page, '04-hosts');

    // Filters live in the URL and are applied by the server.
    await byId(page, ids.HOSTS_SEARCH).fill('no-such-host-xyz');
    await byId(page, ids.HOSTS_APPLY).click();
    await page.waitForURL((u) => u.searchParams.get('search') === 'no-such-host-xyz');
    await expect(row).toHaveCount(0);
    await page.goto(url(`${ids.ROUTE_HOSTS}?search=${encodeURIComponent(hostname)}`));
    await hydrated(page);
    await expect(row).toBeVisible();
    await byId(page, ids.HOSTS_STATUS).selectOption('offline');
    await page.waitForURL((u) => u.searchParams.get('status') === 'offline');
    await expect(row).toHaveCount(0);
    await byId(page, ids.HOSTS_STATUS).selectOption('online');
    await page.waitForURL((u) => u.searchParams.get('status') === 'online');
    await expect(row).toBeVisible();
  });

  await test.step('the host page shows the counts the host itself reports', async () => {
    await byId(page, ids.HOST_ROW_PREFIX + hostname).locator('a.host-link').click();
    await page.waitForURL((u) => u.pathname.startsWith(ids.ROUTE_HOSTS + '/'));
    await hydrated(page);
    await expect(byId(page, ids.HOST_HOSTNAME)).toHaveText(hostname);
    const installed = count(INSTALLED_CMD);
    const pending = count(PENDING_CMD);
    expect(installed).toBeGreaterThan(0);
    await expect(byId(page, ids.INSTALLED_COUNT)).toHaveText(String(installed));
    await expect(byId(page, ids.PENDING_COUNT)).toHaveText(String(pending));
    await expect(byId(page, ids.PACKAGES_TABLE)).toBeVisible();
    await shot(page, '05-host');
  });

  await test.step('installed packages: server-side pagination and search', async () => {
    const pages = Math.ceil(count(INSTALLED_CMD) / PACKAGES_PER_PAGE);
    await expect(byId(page, ids.PAGE_INFO)).toContainText(`Page 1 of ${pages}`);
    if (pages > 1) {
      await byId(page, ids.PAGE_NEXT).click();
      await page.waitForURL((u) => u.searchParams.get('page') === '2');
      await expect(byId(page, ids.PAGE_INFO)).toContainText(`Page 2 of ${pages}`);
    }
    await byId(page, ids.PACKAGES_SEARCH).fill('dpkg');
    await byId(page, ids.PACKAGES_SEARCH).press('Enter');
    await page.waitForURL((u) => u.searchParams.get('q') === 'dpkg' && !u.searchParams.has('page'));
    await expect(byId(page, ids.PACKAGES_TABLE).locator('tbody tr').first()).toContainText('dpkg');
    await expect(byId(page, ids.PAGE_INFO)).toContainText('Page 1 of 1');
  });

  noBrowserErrors();
});
