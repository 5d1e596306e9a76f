import { expect, test } from '@playwright/test';
import * as ids from './ids';
import { byId, hydrated, url } from './server';

test('an unauthenticated visit to /hosts lands on the login page', async ({ page }) => {
  const response = await page.goto(url(ids.ROUTE_HOSTS));
  expect(new URL(page.url()).pathname).toBe(ids.ROUTE_LOGIN);
  expect(response?.status()).toBe(200);
  await hydrated(page);
  await expect(byId(page, ids.LOGIN_USERNAME)).toBeVisible();
});

test('pages other than login and setup need a session', async ({ page }) => {
  for (const path of ['/', ids.ROUTE_ENROLL, '/hosts/does-not-exist']) {
    await page.goto(url(path));
    expect(new URL(page.url()).pathname, `visiting ${path}`).toBe(ids.ROUTE_LOGIN);
  }
});

test('the web listener speaks TLS 1.3 only', async ({ page }) => {
  const response = await page.goto(url(ids.ROUTE_LOGIN));
  expect(response).not.toBeNull();
  const details = await response!.securityDetails();
  expect(details?.protocol).toBe('TLS 1.3');
});
