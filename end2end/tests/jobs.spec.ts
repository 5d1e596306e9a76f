// Patch jobs in the browser: an Admin sets up two host groups with one enrolled host each
// and invites an Operator for the first group. The Operator sees and targets only that
// group's host, previews the update, creates a job, and watches the host's state change
// live (queued (sent) -> received -> running -> succeeded) without a reload while the agent
// side is driven over mTLS by tests/agent.ts (hosts enrolled by the real `pm-agent
// enroll`); then reads the host's output. The other group's host and its job stay hidden.
// Self-contained: its own admin (server CLI), groups, hosts and operator.
import { expect, test, type Browser, type Page } from '@playwright/test';
import { AgentHost, opensslResult } from './agent';
import * as ids from './ids';
import { byId, createAdmin, hydrated, shot, url, watchErrors } from './server';
import { signIn } from './accounts';

const PASSWORD = 'jobs e2e password 4711';
const SUFFIX = `${process.pid}`;
const ADMIN = `jobsadmin${SUFFIX}`;
const OPERATOR = `jobsop${SUFFIX}`;
const GROUP_A = `jobs-a-${SUFFIX}`;
const GROUP_B = `jobs-b-${SUFFIX}`;
const HOST_A = `e2e-jobs-a-${SUFFIX}`;
const HOST_B = `e2e-jobs-b-${SUFFIX}`;

/** Password, then first-time TOTP enrolment; ends signed in on the host list. */
async function firstLogin(page: Page, username: string): Promise<void> {
  await signIn(page, { username, password: PASSWORD, secret: '', usedStep: -1 });
}

async function newSession(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  return context.newPage();
}

test('an operator patches their host from the browser and watches it live', async ({ page, browser }) => {
  const noBrowserErrors = watchErrors(page);
  let hostA: AgentHost;
  let hostB: AgentHost;

  await test.step('an admin (server CLI) creates two host groups', async () => {
    createAdmin(ADMIN, PASSWORD);
    await firstLogin(page, ADMIN);
    await page.goto(url(ids.ROUTE_GROUPS));
    await hydrated(page);
    for (const name of [GROUP_A, GROUP_B]) {
      await byId(page, ids.GROUP_NAME).fill(name);
      await byId(page, ids.GROUP_SUBMIT).click();
      await expect(byId(page, ids.GROUPS_TABLE).locator(`tr[data-group-name="${name}"]`)).toHaveCount(1);
    }
  });

  await test.step('one host enrolls into each group (real pm-agent enroll) and checks in', async () => {
    hostA = AgentHost.enroll(HOST_A, GROUP_A);
    hostB = AgentHost.enroll(HOST_B, GROUP_B);
    expect((await hostA.checkin()).jobs).toEqual([]);
    await hostB.checkin();
  });

  await test.step('the admin defines a hook and invites an operator for group A', async () => {
    await page.goto(url(ids.ROUTE_HOOKS));
    await hydrated(page);
    await byId(page, ids.HOOK_NAME).fill('say hello');
    await byId(page, ids.HOOK_ARGV).fill('/usr/bin/logger\npatch job starting');
    await byId(page, ids.HOOK_SUBMIT).click();
    await expect(byId(page, ids.HOOKS_TABLE)).toContainText('/usr/bin/logger patch job starting');

    await page.goto(url(ids.ROUTE_USERS));
    await hydrated(page);
    await byId(page, ids.INVITE_USERNAME).fill(OPERATOR);
    await byId(page, ids.INVITE_ROLE).selectOption('operator');
    await byId(page, ids.INVITE_GROUPS).locator(`input[data-group-name="${GROUP_A}"]`).check();
    await byId(page, ids.INVITE_SUBMIT).click();
    const link = ((await byId(page, ids.INVITE_LINK).textContent()) ?? '').trim();
    expect(link).toContain('/invite?token=');
    const invitee = await newSession(browser);
    await invitee.goto(link.replace(/^https:\/\/[^/]+/, url('')));
    await hydrated(invitee);
    await byId(invitee, ids.INVITE_PASSWORD).fill(PASSWORD);
    await byId(invitee, ids.INVITE_PASSWORD2).fill(PASSWORD);
    await byId(invitee, ids.INVITE_ACCEPT_SUBMIT).click();
    await expect(byId(invitee, ids.INVITE_DONE)).toBeVisible();
    await invitee.context().close();
  });

  let adminJobB = '';
  await test.step('the admin patches group B host (the operator must never see it)', async () => {
    await page.goto(url(`${ids.ROUTE_JOB_NEW}?host=${hostB.hostId}`));
    await hydrated(page);
    await expect(byId(page, ids.JOB_HOSTS).locator(`input[data-name="${HOST_B}"]`)).toBeChecked();
    await byId(page, ids.JOB_TITLE).fill('admin job on B');
    await byId(page, ids.JOB_SUBMIT).click();
    await page.waitForURL((u) => u.pathname.startsWith(ids.ROUTE_JOBS + '/') && u.pathname !== ids.ROUTE_JOB_NEW);
    adminJobB = new URL(page.url()).pathname.split('/').pop()!;
    await hydrated(page);
    await expect(byId(page, ids.JOB_HOST_ROW_PREFIX + HOST_B)).toBeVisible();
  });

  const op = await newSession(browser);
  const noOperatorErrors = watchErrors(op);
  await test.step('the operator signs in and sees only group A', async () => {
    await firstLogin(op, OPERATOR);
    await expect(byId(op, ids.HOST_ROW_PREFIX + HOST_A)).toBeVisible();
    await expect(byId(op, ids.HOST_ROW_PREFIX + HOST_B)).toHaveCount(0);
    await op.goto(url(`${ids.ROUTE_HOSTS}/${hostB.hostId}`));
    await hydrated(op);
    await expect(op.locator('.alert-error[data-code="not_found"]').first()).toBeVisible();
    await op.goto(url(`${ids.ROUTE_JOBS}/${adminJobB}`));
    await hydrated(op);
    await expect(op.locator('.alert-error[data-code="not_found"]').first()).toBeVisible();
    await op.goto(url(ids.ROUTE_JOBS));
    await hydrated(op);
    await expect(byId(op, ids.JOB_ROW_PREFIX + adminJobB)).toHaveCount(0);
  });

  let jobId = '';
  await test.step('the new-job form offers only group A; the preview shows the version change', async () => {
    await byId(op, ids.NEW_JOB_LINK).click();
    await op.waitForURL((u) => u.pathname === ids.ROUTE_JOB_NEW);
    await hydrated(op);
    await expect(byId(op, ids.JOB_HOSTS).locator(`input[data-name="${HOST_A}"]`)).toHaveCount(1);
    await expect(byId(op, ids.JOB_HOSTS).locator(`input[data-name="${HOST_B}"]`)).toHaveCount(0);
    await expect(byId(op, ids.JOB_GROUPS).locator(`input[data-name="${GROUP_A}"]`)).toHaveCount(1);
    await expect(byId(op, ids.JOB_GROUPS).locator(`input[data-name="${GROUP_B}"]`)).toHaveCount(0);
    await expect(byId(op, ids.JOB_PRE_HOOKS)).toContainText('say hello');

    await byId(op, ids.JOB_HOSTS).locator(`input[data-name="${HOST_A}"]`).check();
    await byId(op, ids.JOB_TITLE).fill('openssl for A');
    await byId(op, ids.JOB_SCOPE).selectOption('security');
    await byId(op, ids.JOB_PREVIEW_BUTTON).click();
    const preview = byId(op, ids.JOB_PREVIEW).locator(`[data-host="${HOST_A}"]`);
    await expect(preview).toContainText('openssl');
    await expect(preview).toContainText('3.0.11-1');
    await expect(preview).toContainText('3.0.15-1');
    // A bad window is refused with a clear message, and nothing is created.
    await byId(op, ids.JOB_SCHEDULE).selectOption('window');
    await byId(op, ids.JOB_WINDOW).fill('Sun 02:00-04:00 Mars/Olympus');
    await byId(op, ids.JOB_SUBMIT).click();
    await expect(byId(op, ids.JOB_ERROR)).toContainText("unknown time zone 'Mars/Olympus'");
    await byId(op, ids.JOB_SCHEDULE).selectOption('now');
    await shot(op, '10-new-job');
    await byId(op, ids.JOB_SUBMIT).click();
    await op.waitForURL((u) => u.pathname.startsWith(ids.ROUTE_JOBS + '/') && u.pathname !== ids.ROUTE_JOB_NEW);
    jobId = new URL(op.url()).pathname.split('/').pop()!;
    await hydrated(op);
  });

  await test.step('the host state changes live as the agent reports, without a reload', async () => {
    // A reload would drop this marker.
    await op.evaluate(() => ((window as any).__noReload = 'still here'));
    const row = byId(op, ids.JOB_HOST_ROW_PREFIX + HOST_A);
    await expect(row).toHaveAttribute('data-state', 'queued (sent)');
    const spec = await hostA.waitForJob();
    expect(spec.job_id).toBe(jobId);
    expect((await hostA.event(jobId, 'received')).proceed).toBe(true);
    await expect(row).toHaveAttribute('data-state', 'received');
    await hostA.event(jobId, 'running');
    await expect(row).toHaveAttribute('data-state', 'running');
    await shot(op, '11-job-running');
    // The fleet's job list, open in another tab, follows too.
    const list = await op.context().newPage();
    await list.goto(url(ids.ROUTE_JOBS));
    await hydrated(list);
    await list.evaluate(() => ((window as any).__noReload = 'list'));
    await expect(byId(list, ids.JOB_ROW_PREFIX + jobId)).toContainText('running');
    const done = await hostA.event(jobId, 'succeeded', opensslResult());
    expect(done.duplicate).toBe(false);
    await expect(row).toHaveAttribute('data-state', 'succeeded');
    await expect(byId(op, ids.JOB_STATUS)).toContainText('completed');
    expect(await op.evaluate(() => (window as any).__noReload)).toBe('still here');
    await expect(byId(list, ids.JOB_ROW_PREFIX + jobId)).toContainText('completed');
    expect(await list.evaluate(() => (window as any).__noReload)).toBe('list');
    await list.close();

    await row.locator('button.show-output').click();
    await expect(byId(op, ids.JOB_HOST_CHANGES)).toContainText('3.0.15-1');
    await expect(byId(op, ids.JOB_HOST_OUTPUT)).toContainText('Setting up openssl (3.0.15-1)');
    await shot(op, '12-job-done');
  });

  await test.step("the host page lists the job; the operator's job list has only their job", async () => {
    await op.goto(url(`${ids.ROUTE_HOSTS}/${hostA.hostId}`));
    await hydrated(op);
    await expect(byId(op, ids.HOST_JOBS).locator(`tr[data-job-id="${jobId}"]`)).toContainText('succeeded');
    await op.goto(url(ids.ROUTE_JOBS));
    await hydrated(op);
    await expect(byId(op, ids.JOB_ROW_PREFIX + jobId)).toContainText('completed');
    await expect(byId(op, ids.JOB_ROW_PREFIX + adminJobB)).toHaveCount(0);
  });

  noOperatorErrors();
  await op.context().close();
  noBrowserErrors();
});
