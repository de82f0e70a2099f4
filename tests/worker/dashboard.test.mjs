// The dashboard served by crm-worker (static assets + the crm-web module), driven in
// Debian's headless Chromium against the worker's API under `wrangler dev`: sign in
// with a viewer-token link, the totals equal the API's report, server verification,
// NDJSON export and offline verification of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startWorker, call as callAt } from './harness.mjs';

const chromiumPath = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
let worker, url, keys, browser, dir;
const call = (...args) => callAt(url, ...args);

before(async () => {
  worker = await startWorker();
  ({ url, keys } = worker);
  dir = mkdtempSync(join(tmpdir(), 'crm-worker-dash-'));
  const users = ['user-123', 'user-200', 'user-402'];
  const batch = Array.from({ length: 60 }, (_, i) => ({
    id: `dash-${i}`, userId: users[i % 3], operation: ['crm.leads.read', 'crm.leads.create'][i % 2],
    occurredAt: new Date(Date.now() - (i + 1) * 3_600_000).toISOString(),
    compliance: { location: 'Berlin', authenticationMethod: 'sso' },
  }));
  const [s] = await call('POST', '/v1/activities?sync=true', keys['edge-a'].ingest, batch);
  assert.equal(s, 201);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  worker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the dashboard signs in at the edge with a viewer token, shows the API totals, exports and verifies', async () => {
  const [, issued] = await call('POST', '/v1/viewer-tokens', keys['edge-a'].admin, {});
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(`${url}${issued.dashboardPath}`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
  assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
  assert.match(await page.textContent('#balance'), /^\d+\.\d{4}$/);
  // The credits panel (issue 27): the edge's grants and a burn-down point per entry.
  await page.waitForSelector('#credits-panel', { state: 'visible' });
  const [, grants] = await call('GET', '/v1/credits/grants?limit=50', keys['edge-a'].read);
  const [, ledger] = await call('GET', '/v1/credits/ledger?limit=200', keys['edge-a'].read);
  assert.deepEqual(await page.$$eval('#grants tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent)),
    grants.grants.map((g) => g.id));
  assert.equal(await page.$$eval('#burn-down circle', (cs) => cs.length), ledger.entries.length);
  const kind = await page.inputValue('#scope-kind');
  const id = await page.inputValue('#scope-id');
  const period = await page.inputValue('#period');
  const groupBy = await page.inputValue('#group-by');
  const tz = await page.inputValue('#tz');
  const q = new URLSearchParams({ since: period, groupBy });
  if (tz) q.set('tz', tz);
  const [status, expected] = await call('GET', `/v1/reports/${kind}/${encodeURIComponent(id)}?${q}`, keys['edge-a'].read);
  assert.equal(status, 200, JSON.stringify(expected));
  assert.equal(await page.textContent('#total'), String(expected.totalActivities));

  await page.click('#verify-server');
  await page.waitForFunction(() => document.querySelector('#audit-status').dataset.result);
  assert.match(await page.textContent('#audit-status'), /The chain verifies: \d+ records/);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-ndjson')]);
  const file = join(dir, 'export.ndjson');
  await download.saveAs(file);
  // The export follows the dashboard's scope and period: the report's activities.
  assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, expected.totalActivities);
  await page.evaluate(() => { delete document.querySelector('#audit-status').dataset.result; });
  await page.setInputFiles('#verify-file', file);
  await page.waitForFunction(() => document.querySelector('#audit-status').dataset.result);
  assert.match(await page.textContent('#audit-status'), /every hash matches/);
  assert.deepEqual(problems, []);
  await page.close();
});
