// The product surface at the edge: administration, viewer tokens, keys, exact credits,
// ingest promises (ids fixed before queueing, conflicts refused before the 202,
// Idempotency-Key, packets over several messages), export and verify, and delivery to
// an upstream stub — crm-worker under `wrangler dev` with local D1 and Queues.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { startWorker, call as callAt, until, d1 } from './harness.mjs';

let worker, url, keys, upstream;
const received = [];
const receivedAlerts = [];
let upstreamFailures = 0;
// While set, the stub holds activity batches past the engine's 10 s deadline (then
// answers 503, so no connection stays open).
let upstreamHangs = false;
// Standard Webhooks (issue 27): every delivery is checked with the specification's own
// library; a request it refuses is answered 401 and counted.
const SIGNING_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const signedIds = new Set();
let badSignatures = 0;
// Why each refused delivery was refused, for the assertion's message.
const refusedSignatures = [];
const call = (...args) => callAt(url, ...args);
const activity = (id, userId, operation, extra = {}) => ({ id, userId, operation, ...extra });

before(async () => {
  // The upstream stub: fails the first two deliveries (5xx), then records batches.
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const route = { '/api/activities/batch': 'activities', '/api/credit-alerts/batch': 'alerts' }[req.url];
      if (!route || req.headers['x-upstream-auth'] !== 'sesame') {
        res.writeHead(404).end();
        return;
      }
      try {
        new Webhook(SIGNING_SECRET).verify(body, req.headers);
        signedIds.add(req.headers['webhook-id']);
      } catch (e) {
        badSignatures += 1;
        refusedSignatures.push(`${e.message} (webhook-timestamp ${req.headers['webhook-timestamp']}, received ${Math.floor(Date.now() / 1000)}, ${body.length} bytes)`);
        res.writeHead(401).end();
        return;
      }
      if (route === 'alerts') {
        receivedAlerts.push(...JSON.parse(body).alerts);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      if (upstreamHangs) {
        setTimeout(() => res.writeHead(503).end(), 15_000);
        return;
      }
      if (upstreamFailures < 2) {
        upstreamFailures += 1;
        res.writeHead(503).end();
        return;
      }
      received.push(...JSON.parse(body).activities);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  worker = await startWorker({
    UPSTREAM_URL: `http://127.0.0.1:${upstream.address().port}`,
    UPSTREAM_AUTH: 'x-upstream-auth: sesame',
    UPSTREAM_SIGNING_SECRET: SIGNING_SECRET,
  });
  ({ url, keys } = worker);
});

after(() => {
  worker?.stop();
  upstream?.close();
});

test('directory patch, policy and prices change the version and the pricing', async () => {
  const a = keys['edge-a'];
  const [s1, patched] = await call('PATCH', '/v1/directory', a.admin,
    { upsert: { users: [{ id: 'user-edge', name: 'Edge User', departmentId: 'dept-sales', roles: ['role-sales-rep'] }] } });
  assert.equal(s1, 200, JSON.stringify(patched));
  assert.equal(patched.version, 2);
  const [, prices] = await call('GET', '/v1/credits/prices', a.read);
  const [s2, put] = await call('PUT', '/v1/credits/prices', a.admin, { ...prices, prices: { ...prices.prices, 'crm.leads.read': '2' } });
  assert.equal(s2, 200, JSON.stringify(put));
  assert.equal(put.version, 3);
  const [, policy] = await call('GET', '/v1/policy', a.read);
  assert.equal(policy.version, 3);
  assert.equal(policy.policy.prices.prices['crm.leads.read'], '2.0000');
  const [s3, bad] = await call('PUT', '/v1/credits/prices', a.admin, { default: 'lots' });
  assert.equal(s3, 400, JSON.stringify(bad));
  assert.equal((await call('GET', '/v1/policy', a.read))[1].version, 3, 'a refused change changes nothing');
  assert.equal((await call('PATCH', '/v1/directory', a.ingest, {}))[0], 403);
});

test('a directory larger than a D1 row is refused with 413 and the limit, changing nothing', async () => {
  const b = keys['edge-b'];
  const [, current] = await call('GET', '/v1/directory', b.admin);
  const users = Array.from({ length: 12_000 }, (_, i) => ({
    id: `bulk-${i}`, name: `Bulk User ${i} ${'n'.repeat(150)}`, departmentId: 'dept-sales', roles: ['role-sales-rep'],
  }));
  const [s, e] = await call('PUT', '/v1/directory', b.admin, { ...current.directory, users: [...current.directory.users, ...users] });
  assert.equal(s, 413, JSON.stringify(e).slice(0, 300));
  assert.match(e.error.message, /1900000/);
  assert.equal((await call('GET', '/v1/directory', b.admin))[1].version, current.version);
});

test('grants are exact beyond 2^53 units and idempotent by key', async () => {
  const b = keys['edge-b'];
  const [, before] = await call('GET', '/v1/credits/balance', b.read);
  // 10^12 credits and one unit: 10^16 + 1 units, past JavaScript's exact integers.
  const grant = { amount: '1000000000000.0001', reason: 'annual plan' };
  const [s1, first] = await call('POST', '/v1/credits/grants', b.admin, grant, { 'Idempotency-Key': 'plan-2026' });
  assert.equal(s1, 200, JSON.stringify(first));
  const expected = (BigInt(before.balance.replace('.', '')) + 10_000_000_000_000_001n).toString();
  assert.equal(first.balance.replace('.', ''), expected);
  const [, again] = await call('POST', '/v1/credits/grants', b.admin, grant, { 'Idempotency-Key': 'plan-2026' });
  assert.equal(again.balance, first.balance, 'a retried grant is applied once');
  const [s3] = await call('POST', '/v1/credits/grants', b.admin, { amount: '5' }, { 'Idempotency-Key': 'plan-2026' });
  assert.equal(s3, 409);
  assert.equal((await call('GET', '/v1/credits/balance', b.read))[1].balance, first.balance);
  assert.equal((await call('POST', '/v1/credits/grants', b.admin, { amount: '0' }))[0], 400);
});

test('keys are created, used and revoked at once', async () => {
  const a = keys['edge-a'];
  const [s1, created] = await call('POST', '/v1/keys', a.admin, { scopes: ['read'], label: 'analytics', expiresInSeconds: 3600 });
  assert.equal(s1, 201, JSON.stringify(created));
  assert.equal((await call('GET', '/v1/credits/balance', created.key))[0], 200);
  assert.equal((await call('POST', '/v1/keys', created.key, { scopes: ['admin'] }))[0], 403);
  const [, listed] = await call('GET', '/v1/keys', a.admin);
  assert.ok(listed.keys.some((k) => k.id === created.id && k.label === 'analytics'));
  assert.ok(listed.keys.every((k) => !('keyHash' in k) && !('key' in k)));
  assert.equal((await call('DELETE', `/v1/keys/${created.id}`, a.admin))[0], 204);
  assert.equal((await call('GET', '/v1/credits/balance', created.key))[0], 401);
  assert.equal((await call('DELETE', `/v1/keys/${created.id}x`, a.admin))[0], 404);
  const [, theirs] = await call('GET', '/v1/keys', keys['edge-b'].admin);
  assert.ok(!theirs.keys.some((k) => k.id === created.id), "tenant B does not see A's keys");
  assert.equal((await call('POST', '/v1/keys', a.admin, { scopes: ['root'] }))[0], 400);
});

test('viewer tokens read only what they cover; forged and foreign ones get 401 or 403', async () => {
  const a = keys['edge-a'];
  const [s1, issued] = await call('POST', '/v1/viewer-tokens', a.admin, { userId: 'user-123', ttlSeconds: 600 });
  assert.equal(s1, 200, JSON.stringify(issued));
  const t = issued.token;
  const [s2, session] = await call('GET', '/v1/session', t);
  assert.equal(s2, 200, JSON.stringify(session));
  assert.equal(session.tenantWide, false);
  assert.deepEqual(session.users.map((u) => u.id), ['user-123']);
  assert.equal((await call('GET', '/v1/reports/users/user-123', t))[0], 200);
  assert.equal((await call('GET', '/v1/dashboards/users/user-123', t))[0], 200);
  assert.equal((await call('GET', '/v1/reports/users/user-200', t))[0], 403);
  assert.equal((await call('GET', '/v1/reports', t))[0], 403);
  assert.equal((await call('GET', '/v1/activities', t))[0], 403);
  assert.equal((await call('GET', '/v1/export', t))[0], 403);
  assert.equal((await call('POST', '/v1/activities', t, activity('vt-1', 'user-123', 'crm.leads.read')))[0], 403);
  const forged = `${t.slice(0, -4)}${t.slice(-4) === 'aaaa' ? 'bbbb' : 'aaaa'}`;
  assert.equal((await call('GET', '/v1/session', forged))[0], 401);
  // A token signed by tenant B's secret does not open tenant A.
  const [, theirs] = await call('POST', '/v1/viewer-tokens', keys['edge-b'].admin, {});
  const [, bSession] = await call('GET', '/v1/session', theirs.token);
  assert.equal(bSession.tenantId, 'edge-b');
  assert.equal((await call('POST', '/v1/viewer-tokens', a.admin, { userId: 'nobody' }))[0], 404);
  assert.equal((await call('POST', '/v1/viewer-tokens', a.admin, { ttlSeconds: 999999999 }))[0], 400);
});

test('ingest fixes ids before queueing, refuses conflicts before the 202 and honours Idempotency-Key', async () => {
  const a = keys['edge-a'];
  // Nested metadata crosses the queue intact (maps inside a queued value once came out empty).
  const nested = { deal: { stage: 'won', lines: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }] }, tags: ['q4'] };
  const [s1, first] = await call('POST', '/v1/activities', a.ingest, activity('c-1', 'user-123', 'crm.leads.read', { metadata: nested }));
  assert.equal(s1, 202, JSON.stringify(first));
  // Same id, other content, while the first may still be in the queue: refused now.
  const [s2, clash] = await call('POST', '/v1/activities', a.ingest, activity('c-1', 'user-200', 'crm.leads.read'));
  assert.equal(s2, 409, JSON.stringify(clash));
  const [s3, inside] = await call('POST', '/v1/activities', a.ingest,
    [activity('c-2', 'user-123', 'crm.leads.read'), activity('c-2', 'user-200', 'crm.leads.read')]);
  assert.equal(s3, 409, JSON.stringify(inside));
  assert.equal(inside.error.details.index, 1);
  const [s4, syncClash] = await call('POST', '/v1/activities?sync=true', a.ingest, activity('c-1', 'user-402', 'crm.leads.read'));
  assert.equal(s4, 409, JSON.stringify(syncClash));
  const body = [{ userId: 'user-123', operation: 'crm.leads.read' }, { userId: 'user-200', operation: 'crm.leads.read' }];
  const [, k1] = await call('POST', '/v1/activities', a.ingest, body, { 'Idempotency-Key': 'import-7' });
  const [, k2] = await call('POST', '/v1/activities', a.ingest, body, { 'Idempotency-Key': 'import-7' });
  assert.deepEqual(k2.ids, k1.ids, 'a retry lands on the same ids');
  await until('the keyed batch to be written', async () => {
    const [, page] = await call('GET', '/v1/activities?limit=500', a.read);
    return k1.ids.every((id) => page.activities.some((r) => r.id === id)) ? page : null;
  });
  const [, page] = await call('GET', '/v1/activities?limit=500', a.read);
  assert.equal(page.activities.filter((r) => k1.ids.includes(r.id)).length, 2, 'stored once');
  assert.deepEqual(page.activities.find((r) => r.id === 'c-1')?.metadata, nested);
  assert.equal((await call('POST', '/v1/activities?sync=maybe', a.ingest, body))[0], 400);
});

test('a large batch travels in several packets and arrives whole, in one chain', async () => {
  const b = keys['edge-b'];
  // 1000 activities with ~6 KB of metadata each: ~6 MB, far over one message or batch.
  const big = Array.from({ length: 1000 }, (_, i) => activity(`big-${i}`, 'user-123', 'crm.leads.read',
    { metadata: { note: 'x'.repeat(6000) } }));
  const [s, accepted] = await call('POST', '/v1/activities', b.ingest, big);
  assert.equal(s, 202, JSON.stringify(accepted).slice(0, 300));
  assert.equal(accepted.ids.length, 1000);
  await until('every packet to be written', async () => {
    const r = await fetch(`${url}/v1/export?operation=crm.leads.read`, { headers: { Authorization: `Bearer ${b.read}` } });
    return Number(r.headers.get('x-export-records')) >= 1000;
  }, 120_000);
  const r = await fetch(`${url}/v1/export`, { headers: { Authorization: `Bearer ${b.read}` } });
  assert.equal(r.headers.get('content-type'), 'application/x-ndjson');
  const records = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
  const ids = new Set(records.map((x) => x.id));
  for (let i = 0; i < 1000; i += 1) assert.ok(ids.has(`big-${i}`), `big-${i} arrived`);
  assert.deepEqual(records.map((x) => x.seq), records.map((_, i) => i + 1), 'one gap-free chain');
  const [sv, verified] = await call('GET', '/v1/audit/verify', b.read);
  assert.equal(sv, 200, JSON.stringify(verified));
  assert.equal(verified.ok, true);
  assert.equal(verified.verified, records.length);
  const csv = await fetch(`${url}/v1/export?format=csv&userId=user-123`, { headers: { Authorization: `Bearer ${b.read}` } });
  const lines = (await csv.text()).trim().split('\n');
  assert.match(lines[0], /^seq,id,occurredAt,userId/);
});

test('tenant-wide report, dashboard, metering operation and OpenAPI', async () => {
  const a = keys['edge-a'];
  const [s1, report] = await call('GET', '/v1/reports?since=1d&groupBy=day&tz=UTC', a.read);
  assert.equal(s1, 200, JSON.stringify(report));
  assert.ok(report.totalActivities >= 1);
  const [s2, dash] = await call('GET', '/v1/dashboards/users/user-123', a.read);
  assert.equal(s2, 200, JSON.stringify(dash));
  assert.equal(dash.context.user.id, 'user-123');
  assert.ok(dash.recent.length >= 1);
  const [s3, op] = await call('POST', '/v1/operations/crm.deals.close', a.ingest, { userId: 'user-123' }, { 'Idempotency-Key': 'deal-1' });
  assert.ok([201, 403].includes(s3), JSON.stringify(op));
  const [s4, again] = await call('POST', '/v1/operations/crm.deals.close', a.ingest, { userId: 'user-123' }, { 'Idempotency-Key': 'deal-1' });
  assert.equal(s4, s3 === 201 ? 200 : 403, JSON.stringify(again));
  assert.equal((await call('POST', '/v1/operations/crm.deals.close', a.ingest, { userId: 'user-123', id: 'x' }))[0], 400);
  const [s5, doc] = await call('GET', '/v1/openapi.json', 'none');
  assert.equal(s5, 200);
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/dead-letters'] && doc.paths['/v1/leads']);
  const [s6, metrics] = await call('GET', '/v1/metrics', a.admin);
  assert.equal(s6, 200, JSON.stringify(metrics));
  assert.ok(metrics.headSeq >= 1);
  assert.equal((await call('GET', '/readyz', 'none'))[0], 200);
  const [s7, dead] = await call('GET', '/v1/dead-letters', a.admin);
  assert.equal(s7, 200, JSON.stringify(dead));
  assert.deepEqual(dead.deadLetters, []);
  assert.equal((await call('POST', '/v1/dead-letters/nope/redrive', a.admin))[0], 404);
  // A packet on the dead-letter queue (test hook) is kept, listed, and re-driven into
  // the log; tenant B sees none of it.
  const [si] = await call('POST', '/v1/testing/dead-letters', a.admin,
    [activity('dl-1', 'user-123', 'crm.leads.read', { metadata: { why: { code: 7 } } }), activity('dl-2', 'user-200', 'crm.leads.read')]);
  assert.equal(si, 202);
  const letter = await until('the dead letter to be kept', async () => {
    const [, l] = await call('GET', '/v1/dead-letters', a.admin);
    return l.deadLetters.find((x) => x.reason === 'injected by a test');
  });
  assert.deepEqual(letter.body.items.map((x) => x.activity.id), ['dl-1', 'dl-2']);
  assert.deepEqual((await call('GET', '/v1/dead-letters', keys['edge-b'].admin))[1].deadLetters, []);
  assert.equal((await call('POST', `/v1/dead-letters/${letter.id}/redrive`, keys['edge-b'].admin))[0], 404);
  const [sr, redriven] = await call('POST', `/v1/dead-letters/${letter.id}/redrive`, a.admin);
  assert.equal(sr, 202, JSON.stringify(redriven));
  const written = await until('the re-driven activities to be written', async () => {
    const [, page] = await call('GET', '/v1/activities?limit=500', a.read);
    return ['dl-1', 'dl-2'].every((id) => page.activities.some((x) => x.id === id)) && page;
  });
  assert.deepEqual(written.activities.find((x) => x.id === 'dl-1').metadata, { why: { code: 7 } });
  assert.deepEqual((await call('GET', '/v1/dead-letters', a.admin))[1].deadLetters, []);
});

// The minute cron trigger, run by hand (`--test-scheduled`).
const minutePass = () => fetch(`${url}/__scheduled?cron=*+*+*+*+*`);

test('the cron pass delivers to the upstream after its failures, every id once or more, in order', async () => {
  const a = keys['edge-a'];
  const [, sent] = await call('POST', '/v1/activities', a.ingest,
    [activity('up-1', 'user-123', 'crm.leads.read'), activity('up-2', 'user-123', 'crm.leads.read')]);
  await until('the upstream to receive them', async () => {
    await minutePass();
    return received.some((x) => x.id === 'up-2');
  }, 90_000);
  assert.ok(upstreamFailures >= 2, 'the stub refused first');
  assert.equal(badSignatures, 0, `every delivery verifies with the standardwebhooks library: ${refusedSignatures.join('; ')}`);
  assert.ok(signedIds.size >= 1);
  for (const id of sent.ids) assert.ok(received.some((x) => x.id === id), `${id} delivered`);
  // Each tenant's chain in order (a pass delivers every tenant of the shard).
  for (const tenant of ['edge-a', 'edge-b']) {
    const own = received.filter((x) => x.tenantId === tenant).map((x) => x.seq);
    assert.deepEqual(own, [...own].sort((x, y) => x - y), `${tenant} delivered in chain order`);
  }
  const seqs = received.filter((x) => x.tenantId === 'edge-a').map((x) => x.seq);
  const [, metrics] = await call('GET', '/v1/metrics', a.admin);
  assert.ok(metrics.upstream.deliveredSeq >= Math.max(...seqs.filter((s) => s)));
});

// Issue 27: credit alert events reach the upstream too — signed, on their own route,
// in order — from the minute cron pass (grants raise them outside the consumer).
test('credit alert events reach the upstream from the cron pass', async () => {
  const b = keys['edge-b'];
  const [, b0] = await call('GET', '/v1/credits/balance', b.admin);
  const threshold = BigInt(b0.balance.replace('.', '')) - 1n;
  const below = `${threshold / 10000n}.${String(threshold % 10000n).padStart(4, '0')}`;
  const [, doc] = await call('GET', '/v1/policy', b.admin);
  assert.equal((await call('PUT', '/v1/policy', b.admin, { ...doc.policy, creditAlerts: [{ id: 'up-low', balanceBelow: below }] }))[0], 200);
  assert.equal((await call('POST', '/v1/activities?sync=true', b.admin, [activity('up-alert', 'user-123', 'crm.leads.read')]))[0], 201);
  assert.equal((await call('POST', '/v1/credits/grants', b.admin, { amount: '1' }))[0], 200);
  await call('PUT', '/v1/policy', b.admin, { ...doc.policy });
  await until('both alert events at the upstream', async () => {
    await fetch(`${url}/__scheduled?cron=*+*+*+*+*`);
    return receivedAlerts.filter((x) => x.tenantId === 'edge-b').length >= 2 ? true : null;
  }, 60_000);
  const mine = receivedAlerts.filter((x) => x.tenantId === 'edge-b');
  assert.deepEqual(mine.map((x) => [x.ruleId, x.state]), [['up-low', 'fired'], ['up-low', 'resolved']]);
  assert.ok(mine[0].entry < mine[1].entry);
  assert.equal(badSignatures, 0, refusedSignatures.join('; '));
});

// Issue 25.3: the upstream is off the write path — an upstream that never answers
// holds up neither the consumer (it only writes) nor the cron pass past its deadline.
test('an upstream that never answers holds up neither ingest nor the cron pass', async () => {
  const a = keys['edge-a'];
  upstreamHangs = true;
  try {
    for (const id of ['hang-1', 'hang-2']) {
      assert.equal((await call('POST', '/v1/activities', a.ingest, activity(id, 'user-123', 'crm.leads.read')))[0], 202);
      await until(`${id} written while the upstream hangs`, async () => (await call('GET', `/v1/activities/${id}`, a.read))[0] === 200, 30_000);
    }
    const started = Date.now();
    const pass = await minutePass();
    assert.equal(pass.status, 200);
    assert.ok(Date.now() - started < 40_000, `the pass took ${Date.now() - started} ms`);
    assert.ok(!received.some((x) => x.id === 'hang-1'), 'nothing counts as delivered');
  } finally {
    upstreamHangs = false;
  }
  await until('delivered once the upstream answers', async () => {
    await minutePass();
    return received.some((x) => x.id === 'hang-2');
  }, 60_000);
});

// Issue 25.8: the upstream reads what it sends from D1, so archiving never passes its
// cursor — records it has not confirmed stay in D1 however old they are.
test('archiving stops at the upstream\'s cursor', async () => {
  const a = keys['edge-a'];
  const DAY = 86_400_000;
  // Everything queued so far written and delivered: nothing moves the cursor meanwhile.
  await until('the upstream to have everything', async () => {
    await minutePass();
    const [row] = d1(worker, a.shard, "SELECT t.head_seq AS h, c.delivered_seq AS d FROM tenants t JOIN sink_cursors c ON c.tenant_id = t.id AND c.sink = 'upstream' WHERE t.id = 'edge-a'");
    return row && row.h === row.d ? true : null;
  }, 60_000);
  d1(worker, a.shard, `UPDATE activities SET received_at = received_at - 10 * ${DAY} WHERE tenant_id = 'edge-a'`);
  const [cursor] = d1(worker, a.shard, "SELECT delivered_seq AS s FROM sink_cursors WHERE tenant_id = 'edge-a' AND sink = 'upstream'");
  assert.ok(cursor.s >= 2, JSON.stringify(cursor));
  // As if the upstream had confirmed only the first record.
  d1(worker, a.shard, "UPDATE sink_cursors SET delivered_seq = 1 WHERE tenant_id = 'edge-a' AND sink = 'upstream'");
  const [s, archived] = await call('POST', '/v1/archive', a.admin, { olderThanDays: 7 });
  assert.equal(s, 200, JSON.stringify(archived));
  assert.deepEqual(archived.archived.map((g) => [g.firstSeq, g.lastSeq]), [[1, 1]]);
  assert.equal(archived.heldBackBySink, true);
  const [{ n }] = d1(worker, a.shard, "SELECT COUNT(*) AS n FROM activities WHERE tenant_id = 'edge-a' AND seq > 1");
  assert.ok(n >= 1, 'the undelivered records stay in D1');
  d1(worker, a.shard, `UPDATE sink_cursors SET delivered_seq = ${cursor.s} WHERE tenant_id = 'edge-a' AND sink = 'upstream'`);
  const [, verified] = await call('GET', '/v1/audit/verify', a.read);
  assert.equal(verified.ok, true, JSON.stringify(verified));
});

test('concurrent sync writes and queued packets for one tenant keep one chain (head guard)', async () => {
  const b = keys['edge-b'];
  const sync = Array.from({ length: 12 }, (_, i) => call('POST', '/v1/activities?sync=true', b.ingest,
    [activity(`race-s-${i}`, 'user-123', 'crm.leads.read')]));
  const queued = Array.from({ length: 6 }, (_, i) => call('POST', '/v1/activities', b.ingest,
    Array.from({ length: 20 }, (_, j) => activity(`race-q-${i}-${j}`, 'user-200', 'crm.leads.read'))));
  const answers = await Promise.all([...sync, ...queued]);
  // A sync write that lost the race to another writer is refused whole (5xx-free) or written.
  const written = answers.slice(0, 12).filter(([s]) => s === 201).length;
  for (const [s, body] of answers.slice(0, 12)) assert.ok([201, 409, 503].includes(s), JSON.stringify(body));
  for (const [s] of answers.slice(12)) assert.equal(s, 202);
  await until('the queued packets to be written', async () => {
    const r = await fetch(`${url}/v1/export?operation=crm.leads.read&userId=user-200`, { headers: { Authorization: `Bearer ${b.read}` } });
    const ids = (await r.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).id);
    return ids.filter((id) => id.startsWith('race-q-')).length === 120;
  }, 90_000);
  const r = await fetch(`${url}/v1/export`, { headers: { Authorization: `Bearer ${b.read}` } });
  const records = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(records.filter((x) => x.id.startsWith('race-s-')).length, written);
  assert.deepEqual(records.map((x) => x.seq), records.map((_, i) => i + 1));
  const [, verified] = await call('GET', '/v1/audit/verify', b.read);
  assert.equal(verified.ok, true, JSON.stringify(verified));
});
