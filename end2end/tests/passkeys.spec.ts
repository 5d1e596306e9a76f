// Passkeys in a real browser: Chromium's virtual authenticator (CDP WebAuthn domain) stands in
// for a platform authenticator with user verification and resident keys. Accounts are made
// with the server's CLI so these tests do not depend on the first-run setup of flow.spec.ts.
import { expect, test, type Page } from '@playwright/test';
import * as ids from './ids';
import { byId, createAdmin, hydrated, url, watchErrors } from './server';
import { freshCode } from './totp';

const PASSWORD = 'passkeys are the future 123';

/** Adds a CTAP2 "internal" authenticator with UV and resident keys to this page's browser. */
async function virtualAuthenticator(page: Page): Promise<{ credentials: () => Promise<number> }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials.length,
  };
}

async function passwordStep(page: Page, username: string): Promise<void> {
  await page.goto(url(ids.ROUTE_LOGIN));
  await hydrated(page);
  await byId(page, ids.LOGIN_USERNAME).fill(username);
  await byId(page, ids.LOGIN_PASSWORD).fill(PASSWORD);
  await byId(page, ids.LOGIN_SUBMIT).click();
}

async function logOut(page: Page): Promise<void> {
  await byId(page, ids.LOGOUT_BUTTON).click();
  await page.waitForURL((u) => u.pathname === ids.ROUTE_LOGIN);
}

/** Clicks `button` and returns the status of the server function call whose path starts with `prefix`. */
async function clickAndAnswer(page: Page, button: string, prefix: string): Promise<number> {
  const answer = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith(prefix));
  await byId(page, button).click();
  return (await answer).status();
}

async function expectSignedInAs(page: Page, username: string): Promise<void> {
  await page.waitForURL((u) => u.pathname === ids.ROUTE_HOSTS);
  await hydrated(page);
  await expect(byId(page, ids.NAV_USER)).toHaveText(username);
}

test('register a passkey on the account page, sign in without a password, remove it', async ({ page }) => {
  const noBrowserErrors = watchErrors(page);
  const username = `pk-alice-${Date.now()}`;
  createAdmin(username, PASSWORD);
  const authenticator = await virtualAuthenticator(page);
  let recoveryCodes: string[] = [];

  await test.step('password, then TOTP as the first factor; recovery codes are shown once', async () => {
    await passwordStep(page, username);
    // A user without a factor is offered enrolment only.
    await expect(byId(page, ids.PASSKEY_ENROL)).toBeVisible();
    const secret = ((await byId(page, ids.TOTP_SECRET).textContent()) ?? '').trim();
    const { code } = await freshCode(secret);
    await byId(page, ids.TOTP_ENROL_CODE).fill(code);
    await byId(page, ids.TOTP_ENROL_SUBMIT).click();
    const codes = byId(page, ids.RECOVERY_CODES).locator('li');
    await expect(codes).toHaveCount(10);
    recoveryCodes = (await codes.allTextContents()).map((c) => c.trim());
    expect(recoveryCodes[0]).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
    await byId(page, ids.RECOVERY_CONTINUE).click();
    await expectSignedInAs(page, username);
  });

  await test.step('add a passkey on the account page', async () => {
    await page.goto(url(ids.ROUTE_ACCOUNT));
    await hydrated(page);
    await expect(byId(page, ids.TOTP_STATUS)).toHaveAttribute('data-enrolled', 'true');
    await expect(byId(page, ids.RECOVERY_LEFT)).toHaveText('10');
    await byId(page, ids.PASSKEY_NAME).fill('Virtual key');
    await byId(page, ids.PASSKEY_ADD).click();
    const row = byId(page, ids.PASSKEYS_TABLE).locator('tr.passkey-row[data-passkey-name="Virtual key"]');
    await expect(row).toBeVisible();
    await expect(row.locator('.passkey-last-used')).toHaveText('never');
    expect(await authenticator.credentials()).toBe(1);
  });

  await test.step('log out, sign in with the passkey alone', async () => {
    await logOut(page);
    await hydrated(page);
    expect(await clickAndAnswer(page, ids.PASSKEY_LOGIN, '/api/auth/passwordless_finish')).toBe(200);
    await expectSignedInAs(page, username);
  });

  await test.step('password, then the passkey as the second factor', async () => {
    await logOut(page);
    await passwordStep(page, username);
    await expect(byId(page, ids.TOTP_CODE)).toBeVisible();
    expect(await clickAndAnswer(page, ids.PASSKEY_SECOND_FACTOR, '/api/auth/passkey_finish')).toBe(200);
    await expectSignedInAs(page, username);
  });

  await test.step('rename, then remove the passkey', async () => {
    await page.goto(url(ids.ROUTE_ACCOUNT));
    await hydrated(page);
    const row = byId(page, ids.PASSKEYS_TABLE).locator('tr.passkey-row[data-passkey-name="Virtual key"]');
    await expect(row.locator('.passkey-last-used')).not.toHaveText('never');
    await row.locator('.passkey-rename').click();
    await row.locator('.passkey-rename-input').fill('Old key');
    await row.locator('.passkey-rename-save').click();
    const renamed = byId(page, ids.PASSKEYS_TABLE).locator('tr.passkey-row[data-passkey-name="Old key"]');
    await expect(renamed).toBeVisible();
    await renamed.locator('.passkey-remove').click();
    await expect(byId(page, ids.PASSKEYS_TABLE).locator('tr.passkey-row')).toHaveCount(0);
  });

  await test.step('the removed passkey no longer signs in', async () => {
    await logOut(page);
    await hydrated(page);
    // The authenticator still holds the credential and answers; the server refuses it.
    expect(await authenticator.credentials()).toBe(1);
    expect(await clickAndAnswer(page, ids.PASSKEY_LOGIN, '/api/auth/passwordless_finish')).toBe(401);
    await expect(byId(page, ids.LOGIN_ERROR)).toHaveText('authentication failed');
    await page.goto(url(ids.ROUTE_HOSTS));
    expect(new URL(page.url()).pathname).toBe(ids.ROUTE_LOGIN);
  });

  await test.step('a recovery code signs in once', async () => {
    await passwordStep(page, username);
    await byId(page, ids.RECOVERY_TOGGLE).click();
    await byId(page, ids.RECOVERY_CODE).fill(recoveryCodes[0]);
    await byId(page, ids.RECOVERY_SUBMIT).click();
    await expectSignedInAs(page, username);
    await page.goto(url(ids.ROUTE_ACCOUNT));
    await hydrated(page);
    await expect(byId(page, ids.RECOVERY_LEFT)).toHaveText('9');
    await logOut(page);
    await passwordStep(page, username);
    await byId(page, ids.RECOVERY_TOGGLE).click();
    await byId(page, ids.RECOVERY_CODE).fill(recoveryCodes[0]);
    await byId(page, ids.RECOVERY_SUBMIT).click();
    await expect(byId(page, ids.LOGIN_ERROR)).toHaveText('authentication failed');
  });

  noBrowserErrors();
});

test('a passkey as the first factor, then as the second factor after the password', async ({ page }) => {
  const noBrowserErrors = watchErrors(page);
  const username = `pk-bob-${Date.now()}`;
  createAdmin(username, PASSWORD);
  await virtualAuthenticator(page);

  await test.step('enrol a passkey instead of TOTP', async () => {
    await passwordStep(page, username);
    expect(await clickAndAnswer(page, ids.PASSKEY_ENROL, '/api/auth/passkey_enrol_finish')).toBe(200);
    await expect(byId(page, ids.RECOVERY_CODES).locator('li')).toHaveCount(10);
    await byId(page, ids.RECOVERY_CONTINUE).click();
    await expectSignedInAs(page, username);
  });

  await test.step('the account page lists it and refuses to remove the only factor', async () => {
    await page.goto(url(ids.ROUTE_ACCOUNT));
    await hydrated(page);
    await expect(byId(page, ids.TOTP_STATUS)).toHaveAttribute('data-enrolled', 'false');
    const rows = byId(page, ids.PASSKEYS_TABLE).locator('tr.passkey-row');
    await expect(rows).toHaveCount(1);
    await rows.first().locator('.passkey-remove').click();
    await expect(byId(page, ids.PASSKEY_ERROR)).toHaveAttribute('data-code', 'last_factor');
    await page.reload();
    await hydrated(page);
    await expect(rows).toHaveCount(1);
  });

  await test.step('password, then the passkey (no TOTP offered)', async () => {
    await logOut(page);
    await passwordStep(page, username);
    await expect(byId(page, ids.PASSKEY_SECOND_FACTOR)).toBeVisible();
    await expect(byId(page, ids.TOTP_CODE)).toHaveCount(0);
    expect(await clickAndAnswer(page, ids.PASSKEY_SECOND_FACTOR, '/api/auth/passkey_finish')).toBe(200);
    await expectSignedInAs(page, username);
  });

  noBrowserErrors();
});
