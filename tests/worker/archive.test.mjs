// Cold history at the edge: a tenant's old days move from its shard's D1 database to
// R2 (local R2 under `wrangler dev`), and export, audit verify and reports read across
// both exactly as before; a tampered archive object is found by the audit. Exports
// page here after every chunk or segment (`EXPORT_MAX_BYTES` 1, issue 25.7): the
// pages, followed by `x-next-after-seq`, add up to the same bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, call as callAt, d1 } from './harness.mjs';

const DAY = 86_400_000;
let worker, url, keys;
const call = (...args) => callAt(url, ...args);

before(async () => {
  // One archived segment per erasure request (issue 28: an erasure that continues).
  worker = await startWorker({ EXPORT_MAX_BYTES: '1', ERASE_QUERY_BUDGET: '1' });
  ({ url, keys } = worker);
});

after(() => worker?.stop());

let pages = 0;
// Every page of an export, joined (a CSV page after the first drops its header line).
const exported = async (key, query = '') => {
  let text = '';
  let after = null;
  const params = new URLSearchParams(query);
  for (let page = 0; ; page += 1) {
    if (after !== null) params.set('afterSeq', after);
    const r = await fetch(`${url}/v1/export?${params}`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, query);
    const body = await r.text();
    text += page > 0 && query.includes('format=csv') ? body.slice(body.indexOf('\n') + 1) : body;
    pages += 1;
    after = r.headers.get('x-next-after-seq');
    if (after === null) return text;
  }
};

test('old days move to R2; export, verify and reports read across R2 and D1 unchanged', async () => {
  // edge-b lives on shard 1: the archive follows the tenant's shard.
  const b = keys['edge-b'];
  const users = ['user-123', 'user-200', 'user-402'];
  const now = Date.now();
  // 300 records: 100 from eleven days ago, 100 from ten days ago, 100 from today.
  for (const [batch, ago] of [[0, 11], [1, 10], [2, 0]]) {
    const body = Array.from({ length: 100 }, (_, i) => ({
      id: `ar-${batch}-${i}`, userId: users[i % 3], operation: ['crm.leads.read', 'crm.leads.create'][i % 2],
      occurredAt: new Date(now - ago * DAY - (100 - i) * 60_000).toISOString(),
    }));
    const [s, answer] = await call('POST', '/v1/activities?sync=true', b.ingest, body);
    assert.equal(s, 201, JSON.stringify(answer).slice(0, 300));
  }
  // Their arrival in the past, as if the days had passed (received_at is not hashed).
  d1(worker, 1, `UPDATE activities SET received_at = received_at - 11 * ${DAY} WHERE tenant_id = 'edge-b' AND seq <= 100`);
  d1(worker, 1, `UPDATE activities SET received_at = received_at - 10 * ${DAY} WHERE tenant_id = 'edge-b' AND seq > 100 AND seq <= 200`);

  const whole = await exported(b.read);
  const csv = await exported(b.read, '?format=csv&userId=user-123');
  const tail = await exported(b.read, '?afterSeq=150');
  const reportPath = '/v1/reports?since=30d&groupBy=day&tz=UTC';
  const [, report] = await call('GET', reportPath, b.read);
  assert.equal(report.totalActivities, 300);

  assert.equal((await call('POST', '/v1/archive', b.admin, { olderThanDays: 3 }))[0], 400, 'younger than 7 days is refused');
  assert.equal((await call('POST', '/v1/archive', b.admin, { olderThanDays: 7, extra: 1 }))[0], 400);
  assert.equal((await call('POST', '/v1/archive', b.read, { olderThanDays: 7 }))[0], 403);
  const [s, archived] = await call('POST', '/v1/archive', b.admin, { olderThanDays: 7 });
  assert.equal(s, 200, JSON.stringify(archived));
  assert.equal(archived.more, false);
  assert.deepEqual(archived.archived.map((g) => [g.firstSeq, g.lastSeq, g.records]), [[1, 100, 100], [101, 200, 100]],
    'one segment per day of arrival');
  assert.equal(d1(worker, 1, "SELECT COUNT(*) AS n FROM activities WHERE tenant_id = 'edge-b'")[0].n, 100, 'only today stays in D1');
  assert.equal((await call('POST', '/v1/archive', b.admin, { olderThanDays: 7 }))[1].archived.length, 0, 'nothing left to archive');

  pages = 0;
  assert.equal(await exported(b.read), whole, 'the export reads R2 then D1, byte for byte as before');
  assert.equal(pages, 3, 'a page per segment, then D1');
  assert.equal(await exported(b.read, '?format=csv&userId=user-123'), csv, 'filters apply to archived records as in SQL');
  assert.equal(await exported(b.read, '?afterSeq=150'), tail, 'a page starting inside a segment');
  const [sv, verified] = await call('GET', '/v1/audit/verify', b.read);
  assert.equal(sv, 200);
  assert.deepEqual([verified.ok, verified.verified], [true, 300], JSON.stringify(verified));
  const [, again] = await call('GET', reportPath, b.read);
  delete again.period; // the clock moved on
  delete report.period;
  assert.deepEqual(again, report, 'reports keep their rollups');
  // edge-a (shard 0) sees nothing of it.
  assert.equal(await exported(keys['edge-a'].read, '?operation=crm.leads.create&userId=user-402'), '');

  // A tampered object (one record's credits changed) is named by the audit.
  const key = archived.archived[1].objectKey;
  const lines = whole.trim().split('\n').slice(100, 200).map((l) => JSON.parse(l));
  lines[5].credits = '0.0000';
  const file = join(worker.persist, 'tampered.ndjson');
  writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
  execFileSync(join(import.meta.dirname, 'node_modules/.bin/wrangler'), ['r2', 'object', 'put', `crm-archive/${key}`, '--local',
    '--persist-to', worker.persist, '--config', worker.config, '--file', file], { stdio: 'ignore' });
  const [, broken] = await call('GET', '/v1/audit/verify', b.read);
  assert.equal(broken.ok, false, JSON.stringify(broken));
  assert.equal(broken.firstBadSeq, 106, JSON.stringify(broken));

  // Retention (the cron trigger) drops the expired archived segments whole — rows in
  // `archives` and their R2 objects — and moves the anchor; today's records stay.
  const [sp] = await call('PUT', '/v1/policy', b.admin, { ...(await call('GET', '/v1/policy', b.admin))[1].policy, retentionDays: 9 });
  assert.equal(sp, 200);
  const cron = await fetch(`${url}/__scheduled?cron=17+*+*+*+*`);
  assert.equal(cron.status, 200, await cron.text());
  assert.equal(d1(worker, 1, "SELECT COUNT(*) AS n FROM archives WHERE tenant_id = 'edge-b'")[0].n, 0);
  const [, kept] = await call('GET', '/v1/audit/verify', b.read);
  assert.deepEqual([kept.ok, kept.anchorSeq, kept.verified], [true, 200, 100], JSON.stringify(kept));
  assert.equal((await exported(b.read)).trim().split('\n').length, 100);
  const get = (k) => {
    try {
      execFileSync(join(import.meta.dirname, 'node_modules/.bin/wrangler'), ['r2', 'object', 'get', `crm-archive/${k}`, '--local',
        '--persist-to', worker.persist, '--config', worker.config, '--pipe'], { stdio: ['ignore', 'pipe', 'ignore'] });
      return true;
    } catch { return false; }
  };
  assert.deepEqual(archived.archived.map((g) => get(g.objectKey)), [false, false], 'the objects are gone from R2');
});

test('an erased subject reads erased in archived segments too, and the chain still verifies', async () => {
  // edge-a lives on shard 0.
  const a = keys['edge-a'];
  const [, doc] = await call('GET', '/v1/policy', a.admin);
  assert.equal((await call('PUT', '/v1/policy', a.admin, { ...doc.policy, personalKeys: ['phone'] }))[0], 200);
  const now = Date.now();
  for (const ago of [12, 11, 0]) {
    const body = Array.from({ length: 20 }, (_, i) => ({
      id: `sh-${ago}-${i}`, userId: ['user-200', 'user-123'][i % 2], operation: 'crm.leads.read',
      occurredAt: new Date(now - ago * DAY - (20 - i) * 60_000).toISOString(),
      metadata: { phone: `${i % 2 ? '+49-' : '+351-'}${i}` },
      compliance: { location: i % 2 ? 'Berlin' : 'Lisbon', authenticationMethod: 'sso' },
    }));
    assert.equal((await call('POST', '/v1/activities?sync=true', a.ingest, body))[0], 201);
  }
  d1(worker, 0, `UPDATE activities SET received_at = received_at - 12 * ${DAY} WHERE tenant_id = 'edge-a' AND seq <= 20`);
  d1(worker, 0, `UPDATE activities SET received_at = received_at - 11 * ${DAY} WHERE tenant_id = 'edge-a' AND seq > 20 AND seq <= 40`);
  const [s, archived] = await call('POST', '/v1/archive', a.admin, { olderThanDays: 7 });
  assert.equal(s, 200, JSON.stringify(archived));
  assert.deepEqual(archived.archived.map((g) => [g.firstSeq, g.lastSeq]), [[1, 20], [21, 40]]);
  const object = execFileSync(join(import.meta.dirname, 'node_modules/.bin/wrangler'), ['r2', 'object', 'get',
    `crm-archive/${archived.archived[0].objectKey}`, '--local', '--persist-to', worker.persist, '--config', worker.config, '--pipe'],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.equal(object.trim().split('\n').length, 20);
  for (const secret of ['Jane Roe', 'jane@acme.test', 'Lisbon', '+351-']) {
    assert.ok(!object.includes(secret), `${secret} in the archived object`);
  }
  const before = await exported(a.read);
  assert.ok(before.includes('Jane Roe') && before.includes('+351-0'), 'opened while the key exists');

  assert.equal((await call('PATCH', '/v1/directory', a.admin, { remove: { users: ['user-200'] } }))[0], 200);
  // The first request moves one archived segment's rollup values and stops (the test's
  // query budget): the keys still exist, the records still open.
  const [sp, partial] = await call('POST', '/v1/subjects/user-200/erase', a.admin);
  assert.equal(sp, 200, JSON.stringify(partial));
  assert.deepEqual([partial.keysDestroyed, partial.record, partial.archivedSegments, partial.complete], [0, null, 1, false]);
  assert.equal((await call('GET', '/v1/activities/sh-0-0', a.read))[1].userContext.user.name, 'Jane Roe');
  const [se, erased] = await call('POST', '/v1/subjects/user-200/erase', a.admin);
  assert.equal(se, 200, JSON.stringify(erased));
  assert.deepEqual([erased.keysDestroyed, erased.rowsScrubbed, erased.archivedSegments, erased.complete, erased.record.seq],
    [1, 10, 1, true, 61]);
  // The rollups keep their counts; the subject's locations (archived and hot) are `[erased]`.
  const byValue = (v) => d1(worker, 0, `SELECT COALESCE(SUM(count), 0) AS n FROM report_rollups
    WHERE tenant_id = 'edge-a' AND tier = 'd' AND dimension = 'location' AND value = '${v}'`)[0].n;
  assert.deepEqual([byValue('Lisbon'), byValue('[erased]'), byValue('Berlin')], [0, 30, 30]);
  assert.equal(d1(worker, 0, "SELECT COUNT(*) AS n FROM erasure_progress")[0].n, 0);

  const after = await exported(a.read);
  for (const secret of ['Jane Roe', 'jane@acme.test', 'Lisbon', '+351-']) {
    assert.ok(!after.includes(secret), `${secret} exported after the erasure`);
  }
  const records = after.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(records.length, 61);
  const archivedJane = records.find((r) => r.id === 'sh-12-0');
  assert.deepEqual([archivedJane.userContext.user.name, archivedJane.metadata.phone, archivedJane.compliance.location,
    archivedJane.personal.state], ['[erased]', '[erased]', null, 'erased']);
  const archivedJohn = records.find((r) => r.id === 'sh-12-1');
  assert.deepEqual([archivedJohn.userContext.user.name, archivedJohn.metadata.phone], ['John Doe', '+49-1']);
  assert.equal(records[60].operation, 'subject.erase');
  const [, verified] = await call('GET', '/v1/audit/verify', a.read);
  assert.deepEqual([verified.ok, verified.verified], [true, 61], JSON.stringify(verified));
  assert.equal(d1(worker, 0, "SELECT COUNT(*) AS n FROM subject_keys WHERE tenant_id = 'edge-a' AND subject_id = 'user-200'")[0].n, 0);
  assert.equal(d1(worker, 0, "SELECT COUNT(*) AS n FROM activities WHERE tenant_id = 'edge-a' AND location = 'Lisbon'")[0].n, 0);
});
