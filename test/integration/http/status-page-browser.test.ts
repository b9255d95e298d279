/**
 * The status page in a real browser (issue 17 point 13): Debian's chromium, headless, driven through
 * playwright-core (scripts/with-deps installs it). With a job that failed for good, its row is
 * highlighted — in the DOM, in the computed style and in the pixels of a screenshot — and the page reloads
 * itself with fresh data.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startApiDouble } from '../../support/forge-api-double.ts';
import { decodePng } from '../../support/png.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { botConfig, githubPush, postGitHub, startTestBot } from '../../support/bot-harness.ts';

const SHA = 'f'.repeat(40);
const HIGHLIGHT: [number, number, number] = [0xfd, 0xec, 0xea];

it('highlights a failed job and reloads itself, in headless chromium', async (t) => {
  const api = await startApiDouble(t);
  api.expect({
    method: 'POST',
    path: `/repos/cern/wishlist/statuses/${SHA}`,
    reply: { status: 403, body: { message: 'Resource not accessible by integration' } },
  });
  const bot = await startTestBot(t, (root) => botConfig(root, [{ apiUrl: api.url }]));
  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', SHA));
  await bot.worker.onIdle();
  const profile = await tempDir(t, 'ducc-chromium-profile-');
  const artifacts = process.env['DUCC_TEST_ARTIFACTS'] ?? (await tempDir(t, 'ducc-screenshots-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();

  await page.goto(`${bot.url}/?refresh=2`);
  const failedRows = page.locator('tr.failed');
  const rowText = await failedRows.first().innerText();
  const background = await failedRows
    .first()
    .locator('td')
    .first()
    .evaluate((cell) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(cell).backgroundColor);
  const refresh = await page.locator('meta[http-equiv="refresh"]').getAttribute('content');
  const screenshot = await page.screenshot({ fullPage: true });
  await writeFile(join(artifacts, 'status-page-failed-job.png'), screenshot);
  const row = decodePng(await failedRows.first().screenshot());
  const generated = await page.locator('#generated').innerText();
  await page.waitForEvent('load');
  const regenerated = await page.locator('#generated').innerText();

  assert.equal(await failedRows.count(), 1);
  assert.match(rowText, /failed/);
  assert.match(rowText, /publish unpacked at ffffffffffff/);
  assert.match(rowText, /HTTP 403: Resource not accessible by integration/);
  assert.equal(background, `rgb(${HIGHLIGHT.join(', ')})`);
  assert.equal(refresh, '2');
  // Most of the row's pixels are the highlight colour (the rest: text, borders).
  let highlighted = 0;
  for (let y = 0; y < row.height; y++) {
    for (let x = 0; x < row.width; x++) if (row.pixel(x, y).every((value, i) => Math.abs(value - HIGHLIGHT[i]!) <= 3)) highlighted++;
  }
  assert.ok(highlighted / (row.width * row.height) > 0.5, `${highlighted} of ${row.width * row.height} pixels of the failed row are highlighted`);
  assert.ok(decodePng(screenshot).width > 0);
  assert.notEqual(regenerated, generated, 'the page reloaded itself with fresh data');
});
