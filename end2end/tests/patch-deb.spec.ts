// Issue 4, item 11: a real patch on this Debian host, end to end. Two versions of two tiny
// test packages are built with dpkg-deb and served from a local apt repository (one update in
// a suite named like a security pocket, one not); version 1 is installed with dpkg. The real
// `pm-agent run` (apt pointed at that repository with APT_CONFIG) reports both updates, an
// admin runs a security-only job from the browser, and dpkg shows the new version of the
// security package only. Both packages are purged afterwards, also when the test fails.
import { expect, test } from '@playwright/test';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ids from './ids';
import { enrollAgent, newAdmin, signIn } from './accounts';
import { byId, hydrated, shot, url, watchErrors } from './server';

const FIXTURE = path.resolve(__dirname, '..', 'fixtures', 'deb', 'pm-deb-fixture.sh');
const PREFIX = `pm-test-e2e-${process.pid}-${Date.now().toString(36)}`;
const SEC = `${PREFIX}-sec`;
const PLAIN = `${PREFIX}-plain`;

let agent: ChildProcess | undefined;

/** The installed version of a package according to dpkg ('' when not installed). */
function dpkgVersion(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch {
    return '';
  }
}

async function stopAgent(): Promise<void> {
  const child = agent;
  agent = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

test.afterAll(async () => {
  await stopAgent();
  execFileSync(FIXTURE, ['purge', PREFIX], { stdio: 'inherit' });
  expect(dpkgVersion(SEC)).toBe('');
  expect(dpkgVersion(PLAIN)).toBe('');
});

test('a security-only job from the browser upgrades a real package with the real agent and apt', async ({ page }) => {
  expect(process.getuid?.(), 'dpkg -i needs root').toBe(0);
  const noBrowserErrors = watchErrors(page);
  const fixtureDir = fs.mkdtempSync(path.join(process.env.PM_E2E_DIR!, 'deb-repo-'));

  let aptConfig = '';
  await test.step('a local apt repository holds 2.0 (security pocket) and 1.1; dpkg has 1.0', async () => {
    const out = execFileSync(FIXTURE, ['setup', fixtureDir, PREFIX], { encoding: 'utf8', timeout: 120_000 });
    aptConfig = /^APT_CONFIG=(.+)$/m.exec(out)![1];
    expect(dpkgVersion(SEC)).toBe('1.0');
    expect(dpkgVersion(PLAIN)).toBe('1.0');
  });

  const admin = newAdmin('patch-admin');
  await signIn(page, admin);

  let hostId = '';
  let stateDir = '';
  await test.step('the real agent enrolls and runs in the background (apt sees the test repository)', async () => {
    await page.goto(url(ids.ROUTE_ENROLL));
    await hydrated(page);
    await byId(page, ids.ENROLL_NOTE).fill('deb patch host');
    await byId(page, ids.ENROLL_SUBMIT).click();
    await expect(byId(page, ids.AGENT_COMMAND)).toBeVisible();
    const command = ((await byId(page, ids.AGENT_COMMAND).textContent()) ?? '').trim();
    const enrolled = enrollAgent(command, 'deb-patch', { APT_CONFIG: aptConfig });
    hostId = enrolled.hostId;
    stateDir = enrolled.stateDir;
    // A reboot is never asked for here; should it be, it is recorded instead of done.
    fs.appendFileSync(
      path.join(stateDir, 'agent.toml'),
      `\n[commands]\nreboot = ["/usr/bin/touch", "${path.join(stateDir, 'reboot-requested')}"]\n`,
    );
    agent = spawn(process.env.PM_AGENT_BIN!, ['run', '--state-dir', stateDir], {
      env: { ...process.env, APT_CONFIG: aptConfig, RUST_LOG: 'info' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  });

  await test.step('the host page shows both pending updates, one of them security', async () => {
    await page.goto(url(`${ids.ROUTE_HOSTS}/${hostId}`));
    await hydrated(page);
    await expect(byId(page, ids.PENDING_COUNT)).toHaveText('2');
    await expect(byId(page, ids.SECURITY_COUNT)).toHaveText('1');
    const updates = byId(page, ids.UPDATES_TABLE);
    await expect(updates.locator('tr', { hasText: SEC })).toContainText('2.0');
    await expect(updates.locator('tr', { hasText: PLAIN })).toContainText('1.1');
    await shot(page, '20-deb-pending');
  });

  let jobId = '';
  await test.step('a security-only job: the preview names only the security package, 1.0 -> 2.0', async () => {
    await byId(page, ids.HOST_NEW_JOB).click();
    await page.waitForURL((u) => u.pathname === ids.ROUTE_JOB_NEW && u.searchParams.get('host') === hostId);
    await hydrated(page);
    await expect(byId(page, ids.JOB_HOSTS).locator(`input[value="${hostId}"]`)).toBeChecked();
    await byId(page, ids.JOB_TITLE).fill('security updates, real apt');
    await byId(page, ids.JOB_SCOPE).selectOption('security');
    await byId(page, ids.JOB_REBOOT).selectOption('never');
    await byId(page, ids.JOB_PREVIEW_BUTTON).click();
    const preview = byId(page, ids.JOB_PREVIEW);
    await expect(preview).toContainText(SEC);
    await expect(preview).toContainText('2.0');
    await expect(preview).not.toContainText(PLAIN);
    await byId(page, ids.JOB_SUBMIT).click();
    await page.waitForURL((u) => u.pathname.startsWith(ids.ROUTE_JOBS + '/') && u.pathname !== ids.ROUTE_JOB_NEW);
    jobId = new URL(page.url()).pathname.split('/').pop()!;
    await hydrated(page);
  });

  await test.step('the job page follows the agent live to success, with versions from dpkg', async () => {
    const row = byId(page, ids.JOB_HOSTS_TABLE).locator(`tr[data-host-id="${hostId}"]`);
    await expect(row).toHaveAttribute('data-state', 'succeeded', { timeout: 180_000 });
    await expect(byId(page, ids.JOB_STATUS)).toContainText('completed');
    await row.locator('button.show-output').click();
    const changes = byId(page, ids.JOB_HOST_CHANGES);
    const change = changes.locator('tr', { hasText: SEC });
    await expect(change).toContainText('1.0');
    await expect(change).toContainText('2.0');
    await expect(changes).not.toContainText(PLAIN);
    await expect(byId(page, ids.JOB_HOST_OUTPUT)).toContainText(`Setting up ${SEC} (2.0)`);
    await shot(page, '21-deb-job-done');
  });

  await test.step('dpkg has 2.0 of the security package and still 1.0 of the other', async () => {
    expect(dpkgVersion(SEC)).toBe('2.0');
    expect(dpkgVersion(PLAIN)).toBe('1.0');
  });

  await test.step('the host reports it: one pending update left, no security update', async () => {
    await expect(async () => {
      await page.goto(url(`${ids.ROUTE_HOSTS}/${hostId}`));
      await hydrated(page);
      await expect(byId(page, ids.PENDING_COUNT)).toHaveText('1', { timeout: 1_000 });
    }).toPass({ timeout: 60_000 });
    await expect(byId(page, ids.SECURITY_COUNT)).toHaveText('0');
    await expect(byId(page, ids.UPDATES_TABLE)).not.toContainText(SEC);
    await byId(page, ids.PACKAGES_SEARCH).fill(SEC);
    await byId(page, ids.PACKAGES_SEARCH).press('Enter');
    await expect(byId(page, ids.PACKAGES_TABLE).locator('tr', { hasText: SEC })).toContainText('2.0');
    await expect(byId(page, ids.HOST_JOBS).locator(`tr[data-job-id="${jobId}"]`)).toContainText('succeeded');
  });

  await test.step('revoking the certificate on the host page locks the agent out', async () => {
    await stopAgent();
    await expect(byId(page, ids.HOST_CERT_STATUS)).toContainText('valid until');
    await byId(page, ids.HOST_REVOKE).click();
    await byId(page, ids.HOST_REVOKE_CONFIRM).click();
    await expect(byId(page, ids.HOST_CERT_STATUS)).toContainText('revoked');
    await page.reload();
    await hydrated(page);
    await expect(byId(page, ids.HOST_CERT_STATUS)).toContainText('revoked');
    await expect(byId(page, ids.HOST_REVOKE)).toHaveCount(0);
    let refused = false;
    try {
      execFileSync(process.env.PM_AGENT_BIN!, ['run', '--once', '--state-dir', stateDir], {
        env: { ...process.env, APT_CONFIG: aptConfig },
        stdio: 'pipe',
        timeout: 60_000,
      });
    } catch {
      refused = true;
    }
    expect(refused, 'a check-in with the revoked certificate fails').toBe(true);
  });

  noBrowserErrors();
});
