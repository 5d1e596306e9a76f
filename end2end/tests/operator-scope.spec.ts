// An Admin builds two host groups, enrolls one real host into each, and invites an Operator
// for group A. The Operator accepts the invitation, enrols TOTP at first sign-in and then sees
// exactly group A's host: the list, the counts, search, the other host's page and the admin
// pages are all cut to their scope, in the browser and at the server-function level.
import { expect, test, type Page } from '@playwright/test';
import * as ids from './ids';
import { type Account, enrollAgent, newAdmin, signIn } from './accounts';
import { byId, hydrated, url, watchErrors } from './server';

async function createGroup(page: Page, name: string): Promise<void> {
  await page.goto(url(ids.ROUTE_GROUPS));
  await hydrated(page);
  await byId(page, ids.GROUP_NAME).fill(name);
  await byId(page, ids.GROUP_SUBMIT).click();
  // Names are shown in rename fields.
  await expect
    .poll(() => byId(page, ids.GROUPS_TABLE).locator('input').evaluateAll((els, n) => els.some((e) => (e as HTMLInputElement).value === n), name))
    .toBe(true);
}

async function enrollInto(page: Page, group: string, label: string): Promise<string> {
  await page.goto(url(ids.ROUTE_ENROLL));
  await hydrated(page);
  await byId(page, ids.ENROLL_NOTE).fill(`scope ${label}`);
  await byId(page, ids.ENROLL_GROUP).selectOption({ label: group });
  await byId(page, ids.ENROLL_SUBMIT).click();
  await expect(byId(page, ids.AGENT_COMMAND)).toBeVisible();
  const command = ((await byId(page, ids.AGENT_COMMAND).textContent()) ?? '').trim();
  return enrollAgent(command, label).hostId;
}

function hostRow(page: Page, hostId: string) {
  return page.locator(`tr[data-host-id="${hostId}"]`);
}

test('an Operator sees and reaches only the hosts of their groups', async ({ page, browser }) => {
  const noBrowserErrors = watchErrors(page);
  const suffix = Date.now().toString(36);
  const groupA = `scope A ${suffix}`;
  const groupB = `scope B ${suffix}`;
  const admin = newAdmin('scope-admin');
  await signIn(page, admin);

  await createGroup(page, groupA);
  await createGroup(page, groupB);
  const hostA = await enrollInto(page, groupA, 'a');
  const hostB = await enrollInto(page, groupB, 'b');

  // The Admin sees both.
  await page.goto(url(ids.ROUTE_HOSTS));
  await hydrated(page);
  await expect(hostRow(page, hostA)).toHaveCount(1);
  await expect(hostRow(page, hostB)).toHaveCount(1);

  // Invite an Operator for group A.
  const operator: Account = { username: `scope-op-${suffix}`, password: `operator password ${suffix}`, secret: '', usedStep: -1 };
  await page.goto(url(ids.ROUTE_USERS));
  await hydrated(page);
  await byId(page, ids.INVITE_USERNAME).fill(operator.username);
  await byId(page, ids.INVITE_ROLE).selectOption('operator');
  await byId(page, ids.INVITE_GROUPS).locator(`input[data-group-name="${groupA}"]`).check();
  await byId(page, ids.INVITE_SUBMIT).click();
  await expect(byId(page, ids.INVITE_LINK)).toBeVisible();
  const link = ((await byId(page, ids.INVITE_LINK).textContent()) ?? '').trim();
  expect(link).toContain('/invite');

  // The Operator, in a browser of their own.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const op = await ctx.newPage();
  const noOperatorErrors = watchErrors(op);
  await op.goto(link.replace(/^https:\/\/[^/]+/, url('')));
  await hydrated(op);
  await byId(op, ids.INVITE_PASSWORD).fill(operator.password);
  await byId(op, ids.INVITE_PASSWORD2).fill(operator.password);
  await byId(op, ids.INVITE_ACCEPT_SUBMIT).click();
  await expect(byId(op, ids.INVITE_DONE)).toBeVisible();
  // The link is single use.
  await op.goto(link.replace(/^https:\/\/[^/]+/, url('')));
  await hydrated(op);
  await byId(op, ids.INVITE_PASSWORD).fill(operator.password);
  await byId(op, ids.INVITE_PASSWORD2).fill(operator.password);
  await byId(op, ids.INVITE_ACCEPT_SUBMIT).click();
  await expect(byId(op, ids.INVITE_ERROR)).toBeVisible();

  // First sign-in: TOTP enrolment is mandatory before any page.
  await signIn(op, operator);
  await expect(hostRow(op, hostA)).toHaveCount(1);
  await expect(hostRow(op, hostB)).toHaveCount(0);
  await expect(byId(op, ids.PAGE_INFO)).toHaveText(/· 1 total$/);

  // Searching for the other host finds nothing; the admin pages are not offered.
  await op.goto(url(`${ids.ROUTE_HOSTS}?search=${encodeURIComponent(hostB)}`));
  await hydrated(op);
  await expect(hostRow(op, hostB)).toHaveCount(0);
  await expect(op.locator('nav a[href="/users"]')).toHaveCount(0);
  await expect(op.locator('nav a[href="/enroll"]')).toHaveCount(0);

  // The other group's host page answers "not found", like a host that does not exist.
  await op.goto(url(`${ids.ROUTE_HOSTS}/${hostB}`));
  await hydrated(op);
  await expect(op.locator('.alert-error[data-code="not_found"]').first()).toBeVisible();
  await op.goto(url(`${ids.ROUTE_HOSTS}/${hostA}`));
  await hydrated(op);
  await expect(op.locator('.alert-error')).toHaveCount(0);

  // Calling the server functions directly changes nothing: 404 for the other host, 403 for
  // admin functions (same-origin requests with the Operator's own cookies).
  const get = await op.request.post(url('/api/hosts/get'), { form: { id: hostB }, headers: { origin: url('') } });
  expect(get.status()).toBe(404);
  const mine = await op.request.post(url('/api/hosts/get'), { form: { id: hostA }, headers: { origin: url('') } });
  expect(mine.status()).toBe(200);
  const users = await op.request.post(url('/api/users/list'), { form: {}, headers: { origin: url('') } });
  expect(users.status()).toBe(403);

  noOperatorErrors();
  await ctx.close();
  noBrowserErrors();
});
