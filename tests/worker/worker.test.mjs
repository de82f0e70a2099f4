// crm-worker under `wrangler dev` (workerd) with local D1 and Queues, on 127.0.0.1.
// The worker must be built first (cargo xtask ci does it: worker-build --release).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, call as callAt, until, root, d1 } from './harness.mjs';

let worker, url, keys;
const call = (...args) => callAt(url, ...args);
const activity = (id, userId, operation) => ({ id, userId, operation, compliance: { location: 'Berlin', authenticationMethod: 'sso' } });

before(async () => {
  worker = await startWorker();
  ({ url, keys } = worker);
});

after(() => worker?.stop());

test('conformance vectors pass on the worker', async () => {
  const dir = join(root, 'tests/conformance');
  let passed = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const vectors = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const setup = typeof vectors.setup === 'string'
      ? JSON.parse(readFileSync(join(dir, 'fixtures', `${vectors.setup}.json`), 'utf8'))
      : (vectors.setup ?? {});
    for (const c of vectors.cases) {
      const [status, answer] = await call('POST', '/v1/conformance', 'none', { setup, op: c.op, input: c.input });
      assert.equal(status, 200);
      if (c.expectError) {
        assert.equal(answer.error?.code, c.expectError.code, `${file} / ${c.name}`);
        if (c.expectError.field) assert.equal(answer.error.field, c.expectError.field, `${file} / ${c.name}`);
      } else {
        assert.deepEqual(answer.ok, c.expect, `${file} / ${c.name}`);
      }
      passed += 1;
    }
  }
  assert.ok(passed >= 100, `${passed} cases`);
});

test('ingest through the queue, read back, idempotent re-send', async () => {
  const a = keys['edge-a'];
  const batch = [activity('q-1', 'user-123', 'crm.leads.create'), activity('q-2', 'user-200', 'crm.leads.read'),
    activity('q-3', 'user-402', 'crm.leads.read')];
  const [status, accepted] = await call('POST', '/v1/activities', a.ingest, batch);
  assert.equal(status, 202, JSON.stringify(accepted));
  assert.deepEqual(accepted.ids, ['q-1', 'q-2', 'q-3']);
  const rows = await until('the consumer to write', async () => {
    const [, page] = await call('GET', '/v1/activities', a.read);
    return page.activities.length === 3 ? page.activities : null;
  });
  const seqs = rows.map((r) => r.seq).sort();
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.equal(rows.find((r) => r.id === 'q-1').credits, '3.5000');
  // The same request again: accepted, stored once.
  assert.equal((await call('POST', '/v1/activities', a.ingest, batch))[0], 202);
  const [s2, sync] = await call('POST', '/v1/activities?sync=true', a.ingest, [activity('s-1', 'user-123', 'crm.leads.read')]);
  assert.equal(s2, 201, JSON.stringify(sync));
  await new Promise((r) => setTimeout(r, 6000)); // longer than max_batch_timeout
  const [, page] = await call('GET', '/v1/activities', a.read);
  assert.equal(page.activities.length, 4);
  const [, changed] = await call('POST', '/v1/activities', a.ingest, activity('q-1', 'user-123', 'crm.leads.update'));
  assert.equal(changed.error.code, 'conflict');
  const [, balance] = await call('GET', '/v1/credits/balance', a.read);
  assert.equal(balance.balance, '99995.0000'); // 3.5 + 0.5 + 0.5 + 0.5
});

test('reports and subtree listings', async () => {
  const a = keys['edge-a'];
  const [status, report] = await call('GET', '/v1/reports/departments/dept-sales?since=1d&groupBy=hour&tz=UTC', a.read);
  assert.equal(status, 200, JSON.stringify(report));
  assert.equal(report.totalActivities, 3);
  assert.equal(report.totalCreditsUsed, '4.5000');
  assert.equal(report.complianceSummary.operationsByLocation.Berlin, 3);
  const [, dept1] = await call('GET', '/v1/departments/dept-1/activities', a.read);
  assert.deepEqual(dept1.activities.map((r) => r.id), ['q-3']);
  const [, dept10] = await call('GET', '/v1/departments/dept-10/activities', a.read);
  assert.deepEqual(dept10.activities, []);
});

test('bad input is a JSON 4xx and cross-tenant probes find nothing', async () => {
  const a = keys['edge-a'];
  const b = keys['edge-b'];
  for (const [body, status] of [['{nope', 400], [[], 400], [{ userId: 'user-999', operation: 'crm.leads.read' }, 422],
    [{ userId: 'user-123', operation: 'crm.leads.read', compliance: { ipAddress: '1.2.3.4' } }, 400]]) {
    const [got, e] = await call('POST', '/v1/activities', a.ingest, body);
    assert.equal(got, status, JSON.stringify(e));
    assert.ok(e.error.message);
  }
  assert.equal((await call('GET', '/v1/activities?since=3x', a.read))[0], 400);
  assert.equal((await call('GET', '/v1/activities?cursor=zz', a.read))[0], 400);
  assert.equal((await call('GET', '/v1/activities', 'crm_nope'))[0], 401);
  assert.equal((await call('POST', '/v1/activities', a.read, activity('r', 'user-123', 'crm.leads.read')))[0], 403);
  const [, theirs] = await call('GET', '/v1/users/user-123/activities', b.read);
  assert.deepEqual(theirs.activities, [], "tenant B sees none of A's rows");
  const [, report] = await call('GET', '/v1/reports/users/user-123', b.read);
  assert.equal(report.totalActivities, 0);
  const [s, e] = await call('POST', '/v1/leads', a.admin, {});
  assert.equal(s, 501, JSON.stringify(e));
  assert.match(e.error.message, /operations/);
  assert.equal((await call('DELETE', '/v1/activities', a.admin))[0], 405);
  assert.equal((await call('GET', '/v1/nothing-here', a.admin))[0], 404);
});

test('the dashboard and its wasm module are served as static assets', async () => {
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /CRM activity/);
  const wasm = await fetch(`${url}/pkg/crm_web_bg.wasm`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  const glue = await fetch(`${url}/pkg/crm_web.js`);
  assert.equal(glue.status, 200);
});

test('tenants on two shards: each chain is written to its own shard\'s database, in order, and read back from there', async () => {
  const a = keys['edge-a'];
  const b = keys['edge-b'];
  assert.deepEqual([a.shard, b.shard], [0, 1]);
  const batch = (p) => Array.from({ length: 40 }, (_, i) => activity(`${p}-${i}`, 'user-123', 'crm.leads.read'));
  const sent = await Promise.all([call('POST', '/v1/activities', a.ingest, batch('sa')), call('POST', '/v1/activities', b.ingest, batch('sb'))]);
  assert.deepEqual(sent.map(([s]) => s), [202, 202]);
  await until('both shards to be written', async () => {
    const pages = await Promise.all([a, b].map(async (k) => (await call('GET', '/v1/activities?limit=500', k.read))[1]));
    return pages.every((p) => p.activities.filter((r) => /^s[ab]-/.test(r.id)).length === 40);
  });
  const rows = (shard, tenant) => d1(worker, shard, `SELECT COUNT(*) AS n FROM activities WHERE tenant_id = '${tenant}'`)[0].n;
  assert.ok(rows(0, 'edge-a') >= 40 && rows(1, 'edge-b') >= 40, 'each tenant on its shard');
  assert.equal(rows(1, 'edge-a'), 0, 'nothing of edge-a on shard 1');
  assert.equal(rows(0, 'edge-b'), 0, 'nothing of edge-b on shard 0');
  for (const k of [a, b]) {
    const [status, verified] = await call('GET', '/v1/audit/verify', k.read);
    assert.equal(status, 200, JSON.stringify(verified));
    assert.equal(verified.ok, true, JSON.stringify(verified));
  }
  // A key created for the shard-1 tenant is registered in the control database and works.
  const [sk, created] = await call('POST', '/v1/keys', b.admin, { scopes: ['read'] });
  assert.equal(sk, 201, JSON.stringify(created));
  assert.equal((await call('GET', '/v1/credits/balance', created.key))[0], 200);
  assert.equal(d1(worker, 0, "SELECT COUNT(*) AS n FROM api_keys WHERE tenant_id = 'edge-b'")[0].n, 0);
});

// Issue 27: 16 clients at once spend a balance past a threshold at the edge; the
// consumer's crossing write raises exactly one alert, however the deliveries interleave.
test('a threshold crossed by 16 concurrent clients raises one alert at the edge', async () => {
  const b = keys['edge-b'];
  const [, b0] = await call('GET', '/v1/credits/balance', b.read);
  const units = BigInt(b0.balance.replace('.', ''));
  assert.ok(units > 200_000n, `room to spend: ${b0.balance}`);
  // 16 clients × 2 reads × 0.5 = 16 credits; the threshold is 5 below the balance now.
  const threshold = units - 50_000n;
  const below = `${threshold / 10000n}.${String(threshold % 10000n).padStart(4, '0')}`;
  const [, doc] = await call('GET', '/v1/policy', b.admin);
  const [ps] = await call('PUT', '/v1/policy', b.admin, { ...doc.policy, creditAlerts: [{ id: 'race-low', balanceBelow: below }] });
  assert.equal(ps, 200);
  const [, before] = await call('GET', '/v1/credits/alerts?limit=100', b.read);
  const answers = await Promise.all(Array.from({ length: 16 }, async (_, c) => {
    const statuses = [];
    for (let r = 0; r < 2; r += 1) {
      statuses.push((await call('POST', '/v1/activities', b.ingest, activity(`race-${c}-${r}`, 'user-123', 'crm.leads.read')))[0]);
    }
    return statuses;
  }));
  assert.ok(answers.flat().every((s) => s === 202), JSON.stringify(answers));
  await until('every read to be recorded', async () => {
    const [, page] = await call('GET', '/v1/activities?limit=500&operation=crm.leads.read', b.read);
    return page.activities.filter((x) => x.id.startsWith('race-')).length === 32;
  });
  const [, b1] = await call('GET', '/v1/credits/balance', b.read);
  assert.ok(BigInt(b1.balance.replace('.', '')) < threshold, `spent past the threshold: ${b1.balance}`);
  const [, after] = await call('GET', '/v1/credits/alerts?limit=100', b.read);
  const fresh = after.alerts.filter((x) => x.ruleId === 'race-low');
  assert.equal(after.alerts.length - before.alerts.length, 1, JSON.stringify(after));
  assert.deepEqual(fresh.map((x) => x.state), ['fired']);
  await call('PUT', '/v1/policy', b.admin, { ...doc.policy });
});

// Issue 27: "a grant expiring within D days" is raised by the cron pass (time crosses
// it, not a charge) from the same crm-store rule as crm-host's retention pass: once per
// rule and grant however often the pass runs, for grants still holding credits.
test('the cron pass raises one expiry-window alert per grant', async () => {
  const b = keys['edge-b'];
  const [, doc] = await call('GET', '/v1/policy', b.admin);
  const [ps] = await call('PUT', '/v1/policy', b.admin, { ...doc.policy, creditAlerts: [{ id: 'edge-soon', grantExpiringWithinDays: 7 }] });
  assert.equal(ps, 200);
  const inDays = (d) => new Date(Date.now() + d * 86_400_000).toISOString();
  const grant = async (days) => {
    const [s, g] = await call('POST', '/v1/credits/grants', b.admin, { amount: '5', expiresAt: inDays(days) });
    assert.equal(s, 200, JSON.stringify(g));
    return g.grant.id;
  };
  const soon = await grant(3);
  await grant(30);
  const [, before] = await call('GET', '/v1/credits/alerts?limit=100', b.read);
  for (let i = 0; i < 3; i += 1) {
    const cron = await fetch(`${url}/__scheduled?cron=17+*+*+*+*`);
    assert.equal(cron.status, 200, await cron.text());
  }
  const [, after] = await call('GET', '/v1/credits/alerts?limit=100', b.read);
  const raised = after.alerts.filter((a) => a.ruleId === 'edge-soon');
  assert.equal(after.alerts.length - before.alerts.length, 1, JSON.stringify(after));
  assert.deepEqual([raised.length, raised[0].grantId, raised[0].state], [1, soon, 'fired']);
  const [rs] = await call('PUT', '/v1/policy', b.admin, doc.policy);
  assert.equal(rs, 200);
});

// Issue 25.10: packets a consumer writes together keep each its own request's arrival
// time (they all got the first packet's before). Last in this file: earlier tests
// count edge-b's rows.
test('each packet keeps its own received_at when the consumer writes them together', async () => {
  const b = keys['edge-b'];
  const t0 = Date.now();
  assert.equal((await call('POST', '/v1/activities', b.ingest, [activity('rx-1', 'user-123', 'crm.leads.read')]))[0], 202);
  // Within the queue's 5 s batch window: one batch, two packets.
  await new Promise((r) => setTimeout(r, 1500));
  const t1 = Date.now();
  assert.equal((await call('POST', '/v1/activities', b.ingest, [activity('rx-2', 'user-123', 'crm.leads.read')]))[0], 202);
  const rows = await until('both written', async () => {
    const found = d1(worker, b.shard, "SELECT id, received_at AS r FROM activities WHERE tenant_id = 'edge-b' AND id IN ('rx-1', 'rx-2') ORDER BY id");
    return found.length === 2 ? found : null;
  });
  assert.ok(Math.abs(rows[0].r - t0) < 1000, JSON.stringify({ rows, t0 }));
  assert.ok(Math.abs(rows[1].r - t1) < 1000, JSON.stringify({ rows, t1 }));
  assert.ok(rows[1].r - rows[0].r >= 1000, JSON.stringify(rows));
});
