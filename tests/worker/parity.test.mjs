// The same activities sent to crm-worker and to crm-host give the same report.
// CRM_HOST_BIN names the built host binary (cargo xtask ci sets it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { startWorker, call, until, root } from './harness.mjs';

const hostBin = process.env.CRM_HOST_BIN ?? join(root, 'target/debug/crm-host');
let worker, host, hostUrl, hostKey, dir, receiver;
// Webhook receivers by path (`/hook/{name}`): each checks every delivery with the
// Standard Webhooks library and its endpoint's secret, and answers the first delivery of
// a fired alert 503 (deliveries of different events may arrive in any order).
const receivers = {};
let badSignatures = 0;
// The operator's secret on both runtimes (provisioning, issue 25.11).
const OPERATOR = 'parity-operator-secret-0123456789abcdef';

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const r = receivers[req.url.replace('/hook/', '')];
      if (!r) { res.writeHead(404).end(); return; }
      try {
        new Webhook(r.secret).verify(body, req.headers);
      } catch {
        badSignatures += 1;
        res.writeHead(401).end();
        return;
      }
      const event = { id: req.headers['webhook-id'], ...JSON.parse(body) };
      r.got.push(event);
      const fired = r.got.filter((g) => g.type === 'credits.alert.fired').length;
      res.writeHead(event.type === 'credits.alert.fired' && fired === 1 ? 503 : 204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  worker = await startWorker({ OPERATOR_SECRET: OPERATOR, WEBHOOK_ALLOW_HOSTS: '127.0.0.1' });
  dir = mkdtempSync(join(tmpdir(), 'crm-parity-'));
  writeFileSync(join(dir, 'operator.secret'), OPERATOR);
  const db = join(dir, 'crm.db');
  const fixture = JSON.parse(readFileSync(join(root, 'tests/conformance/fixtures/acme.json'), 'utf8'));
  writeFileSync(join(dir, 'directory.json'), JSON.stringify(fixture.directory));
  const cli = (args) => execFileSync(hostBin, args, { encoding: 'utf8', env: { ...process.env, CRM_LOG: 'error' } }).trim();
  cli(['tenant', 'create', '--db', db, '--id', 'edge-a', '--name', 'edge-a', '--timezone', fixture.policy.timezone, '--balance', '100000']);
  cli(['directory', 'import', '--db', db, '--tenant', 'edge-a', join(dir, 'directory.json')]);
  hostKey = cli(['key', 'create', '--db', db, '--tenant', 'edge-a', '--scope', 'admin']);
  host = spawn(hostBin, ['serve', '--db', db, '--listen', '127.0.0.1:0', '--engine', 'native', '--operator-secret', join(dir, 'operator.secret'), '--webhook-allow-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CRM_LOG: 'crm_host=info' } });
  let log = '';
  host.stderr.on('data', (d) => { log += d; });
  hostUrl = await until('crm-host serve', async () => log.match(/(http:\/\/127\.0\.0\.1:\d+)/)?.[1], 60_000);
  const [status] = await call(hostUrl, 'PUT', '/v1/credits/prices', hostKey, fixture.policy.prices);
  assert.equal(status, 200);
});

after(() => {
  worker?.stop();
  receiver?.close();
  if (host && host.exitCode === null) host.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('reports from the worker equal reports from crm-host for the same activities', async () => {
  const users = ['user-123', 'user-200', 'user-402', 'user-300'];
  const ops = ['crm.leads.create', 'crm.leads.read', 'crm.leads.delete', 'crm.reports.export'];
  const base = Date.now() - 3 * 86_400_000;
  const batch = Array.from({ length: 120 }, (_, i) => ({
    id: `par-${i}`, userId: users[i % 4], operation: ops[(i * 7) % 4], entityType: 'lead',
    occurredAt: new Date(base + i * 1_800_000).toISOString(),
    compliance: { location: ['Berlin', 'Paris'][i % 2], authenticationMethod: 'sso' },
  }));
  const a = worker.keys['edge-a'];
  assert.equal((await call(worker.url, 'POST', '/v1/activities', a.ingest, batch))[0], 202);
  assert.equal((await call(hostUrl, 'POST', '/v1/activities', hostKey, batch))[0], 201);
  const from = new Date(base - 3_600_000 - 1234).toISOString();
  const to = new Date(base + 121 * 1_800_000 + 999).toISOString();
  for (const path of [`/v1/reports?from=${from}&to=${to}&groupBy=month&tz=America/New_York`,
    `/v1/reports/departments/dept-sales?from=${from}&to=${to}&groupBy=day`,
    `/v1/reports/departments/dept-sales?from=${from}&to=${to}&groupBy=day&includeUserDetails=true`,
    `/v1/reports/users/user-123?from=${from}&to=${to}&groupBy=hour&tz=UTC`,
    `/v1/reports/departments/dept-1?from=${from}&to=${to}&groupBy=week&tz=Asia/Kolkata`]) {
    const edge = await until('the consumer to write', async () => {
      const [, r] = await call(worker.url, 'GET', path, a.read);
      const [, h] = await call(hostUrl, 'GET', path, hostKey);
      return r.totalActivities === h.totalActivities ? [r, h] : null;
    });
    const [r, h] = edge;
    // The client IP is the connection's on each runtime; both are this machine.
    assert.equal(r.complianceSummary.uniqueIpAddresses <= 1 && h.complianceSummary.uniqueIpAddresses <= 1, true);
    delete r.complianceSummary.uniqueIpAddresses;
    delete h.complianceSummary.uniqueIpAddresses;
    assert.deepEqual(r, h, path);
    assert.ok(h.totalActivities > 0, path);
  }
});

test('dashboards and refusals are the same on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const from = new Date(Date.now() - 5 * 86_400_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  const path = `/v1/dashboards/users/user-123?from=${from}&to=${to}&groupBy=day&tz=UTC`;
  const [s1, r] = await call(worker.url, 'GET', path, a.read);
  const [s2, h] = await call(hostUrl, 'GET', path, hostKey);
  assert.equal(s1, 200, JSON.stringify(r));
  assert.equal(s2, 200, JSON.stringify(h));
  assert.deepEqual(r.context, h.context);
  for (const x of [r.report, h.report]) delete x.complianceSummary.uniqueIpAddresses;
  assert.deepEqual(r.report, h.report);
  assert.deepEqual(r.recent.map((x) => x.id), h.recent.map((x) => x.id));
  // The same bad requests get the same status and error code.
  for (const [method, p, body] of [
    ['GET', '/v1/reports?groupBy=year', undefined],
    ['GET', '/v1/reports/users/nobody', undefined],
    ['GET', '/v1/activities?limit=0', undefined],
    ['GET', '/v1/activities?bogus=1', undefined],
    ['POST', '/v1/activities', [{ userId: 'user-999', operation: 'crm.leads.read' }]],
    ['POST', '/v1/activities', { userId: 'user-123' }],
    ['POST', '/v1/keys', { scopes: [] }],
    ['POST', '/v1/viewer-tokens', { userId: 'user-123', departmentId: 'dept-1' }],
    ['POST', '/v1/credits/grants', { amount: '-1' }],
    ['PATCH', '/v1/directory', { upsert: { users: [{ id: 'x', name: 'X', departmentId: 'nowhere' }] } }],
    ['DELETE', '/v1/activities', undefined],
  ]) {
    const [ws, we] = await call(worker.url, method, p, a.admin, body);
    const [hs, he] = await call(hostUrl, method, p, hostKey, body);
    assert.equal(ws, hs, `${method} ${p}: worker ${JSON.stringify(we)} host ${JSON.stringify(he)}`);
    assert.equal(we.error?.code, he.error?.code, `${method} ${p}`);
  }
});

test('request rules answer alike: status, code, message and retry hint (crm_api on both)', async () => {
  const a = worker.keys['edge-a'];
  const [ks, hostRead] = await call(hostUrl, 'POST', '/v1/keys', hostKey, { scopes: ['read'] });
  assert.equal(ks, 201);
  const raw = async (base, method, path, key, { body, type = 'application/json' } = {}) => {
    const headers = { Authorization: `Bearer ${key}` };
    if (body !== undefined) headers['Content-Type'] = type;
    const r = await fetch(`${base}${path}`, { method, headers, body });
    return [r.status, await r.json(), r.headers.get('retry-after')];
  };
  // A body past its endpoint's limit is refused on its Content-Length with crm_api's
  // answer (crm-host's is tested in it::hostile and crm_api::request; a host may close
  // the connection before a client finishes sending, so it is not raced here).
  {
    const big = JSON.stringify({ amount: '1', reason: 'x'.repeat(1_100_000) });
    const r = await fetch(`${worker.url}/v1/credits/grants`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${a.admin}`, 'Content-Type': 'application/json' },
      body: big,
      signal: AbortSignal.timeout(30_000),
    });
    const e = await r.json();
    assert.deepEqual([r.status, e.error.code, e.error.message], [413, 'too_large', 'the request body is larger than 1024 KiB']);
  }
  const cases = [
    ['wrong content type', 'POST', '/v1/activities', 'admin', { body: '{}', type: 'text/plain' }],
    ['repeated query parameter', 'GET', '/v1/activities?limit=1&limit=2', 'admin', {}],
    ['unknown query parameter', 'GET', '/v1/reports?bogus=1', 'admin', {}],
    ['malformed key', 'GET', '/v1/activities', 'crm_not-a-key', {}],
    ['a read key may not check permissions', 'POST', '/v1/permissions/check', 'read', { body: JSON.stringify({ userId: 'user-123', permission: 'crm.leads.read' }) }],
    ['no such endpoint', 'GET', '/v1/reports/', 'admin', {}],
    ['method not allowed', 'DELETE', '/v1/reports', 'admin', {}],
    ['too deep JSON', 'POST', '/v1/activities', 'admin', { body: `${'['.repeat(100)}${']'.repeat(100)}` }],
  ];
  const keyFor = (runtime, which) => {
    if (which === 'admin') return runtime === 'worker' ? a.admin : hostKey;
    if (which === 'read') return runtime === 'worker' ? a.read : hostRead.key;
    return which;
  };
  for (const [what, method, path, key, opts] of cases) {
    const [ws, we, wr] = await raw(worker.url, method, path, keyFor('worker', key), opts);
    const [hs, he, hr] = await raw(hostUrl, method, path, keyFor('host', key), opts);
    assert.ok(ws >= 400 && ws < 500, `${what}: worker ${ws} ${JSON.stringify(we)}`);
    assert.deepEqual([ws, we.error.code, we.error.message, wr], [hs, he.error.code, he.error.message, hr],
      `${what}: worker left, host right`);
  }
  // One activity written synchronously: the host's answer shape (the record, 201).
  const one = { id: `sync-one-${Date.now()}`, userId: 'user-123', operation: 'crm.leads.read' };
  const [ws, w1] = await call(worker.url, 'POST', '/v1/activities?sync=true', a.ingest, one);
  const [hs, h1] = await call(hostUrl, 'POST', '/v1/activities', hostKey, one);
  assert.equal(ws, 201, JSON.stringify(w1));
  assert.equal(hs, 201, JSON.stringify(h1));
  assert.deepEqual(Object.keys(w1).sort(), Object.keys(h1).sort());
  assert.equal(w1.id, one.id);
});

test('lookups and filters answer the same records on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const batch = Array.from({ length: 12 }, (_, i) => ({
    id: `look-${i}`, userId: ['user-123', 'user-200'][i % 2], operation: 'crm.leads.read',
    entityType: i % 3 === 0 ? 'deal' : 'lead', entityId: `e-${i % 4}`, sessionId: `s-${i % 3}`,
    metadata: { source: ['web', 'api'][i % 2] },
    compliance: { location: ['Lima', 'Oslo'][i % 2], authenticationMethod: 'sso' },
  }));
  assert.equal((await call(worker.url, 'POST', '/v1/activities?sync=true', a.ingest, batch))[0], 201);
  assert.equal((await call(hostUrl, 'POST', '/v1/activities', hostKey, batch))[0], 201);
  const ids = (page) => page.activities.map((x) => x.id).sort();
  for (const path of [
    '/v1/entities/lead/e-1/activities',
    '/v1/activities?entityType=deal&entityId=e-0',
    '/v1/activities?sessionId=s-2',
    '/v1/activities?location=Lima&metadata=source:web',
    '/v1/activities?metadata=source:api&userId=user-200',
    '/v1/users/user-123/activities?sessionId=s-0',
  ]) {
    const [ws, w] = await call(worker.url, 'GET', path, a.read);
    const [hs, h] = await call(hostUrl, 'GET', path, hostKey);
    assert.equal(ws, 200, `${path}: ${JSON.stringify(w)}`);
    assert.equal(hs, 200, `${path}: ${JSON.stringify(h)}`);
    assert.ok(ids(h).length > 0, path);
    assert.deepEqual(ids(w), ids(h), path);
  }
  const [ws, w] = await call(worker.url, 'GET', '/v1/activities/look-5', a.read);
  const [hs, h] = await call(hostUrl, 'GET', '/v1/activities/look-5', hostKey);
  assert.deepEqual([ws, w.id, w.entityId, w.metadata], [hs, h.id, h.entityId, h.metadata]);
  for (const path of ['/v1/activities/missing', '/v1/activities?ipAddress=10.0.0.0/12', '/v1/activities?metadata=x']) {
    const [ws2, we] = await call(worker.url, 'GET', path, a.read);
    const [hs2, he] = await call(hostUrl, 'GET', path, hostKey);
    assert.deepEqual([ws2, we.error.code], [hs2, he.error.code], path);
  }
});

test('the price of one operation is the same on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  for (const op of ['crm.leads.create', 'crm.leads.archive', 'crm.deals.close', 'Bad%20Op']) {
    const [ws, w] = await call(worker.url, 'GET', `/v1/credits/prices/${op}`, a.read);
    const [hs, h] = await call(hostUrl, 'GET', `/v1/credits/prices/${op}`, hostKey);
    assert.deepEqual([ws, w], [hs, h], op);
  }
});

test('dashboards say when they were made, on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  for (const [base, key] of [[worker.url, a.read], [hostUrl, hostKey]]) {
    const [status, d] = await call(base, 'GET', '/v1/dashboards/users/user-123?since=1d', key);
    assert.equal(status, 200, JSON.stringify(d));
    assert.ok(Math.abs(Date.parse(d.lastUpdated) - Date.now()) < 60_000, d.lastUpdated);
  }
});

test('rotating the viewer-token secret revokes earlier tokens on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    const [s1, t] = await call(base, 'POST', '/v1/viewer-tokens', admin, {});
    assert.equal(s1, 200, JSON.stringify(t));
    assert.equal((await call(base, 'GET', '/v1/session', t.token))[0], 200);
    assert.equal((await call(base, 'POST', '/v1/viewer-tokens/rotate', admin))[0], 204);
    const [s2, e] = await call(base, 'GET', '/v1/session', t.token);
    assert.deepEqual([s2, e.error.code], [401, 'unauthorized'], base);
    const [, t2] = await call(base, 'POST', '/v1/viewer-tokens', admin, {});
    assert.equal((await call(base, 'GET', '/v1/session', t2.token))[0], 200);
  }
});

// Issue 26.6: the chain head signed with Ed25519, checked here by Node's own
// implementation (not ours); verify accepts the kept checkpoint on both runtimes.
test('signed checkpoints verify with an independent Ed25519 and are accepted by verify', async () => {
  const { createPublicKey, verify } = await import('node:crypto');
  const a = worker.keys['edge-a'];
  for (const [base, key] of [[worker.url, a.read], [hostUrl, hostKey]]) {
    const [status, c] = await call(base, 'GET', '/v1/audit/checkpoint', key);
    assert.equal(status, 200, JSON.stringify(c));
    assert.deepEqual(Object.keys(c).sort(), ['at', 'hash', 'publicKey', 'seq', 'signature', 'tenantId']);
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(c.publicKey, 'hex').toString('base64url') },
      format: 'jwk',
    });
    const message = (seq) => Buffer.from(`crm-checkpoint-v1\n${c.tenantId}\n${seq}\n${c.hash}\n${Date.parse(c.at)}`);
    const signature = Buffer.from(c.signature, 'hex');
    assert.ok(verify(null, message(c.seq), publicKey, signature), base);
    assert.ok(!verify(null, message(c.seq + 1), publicKey, signature), base);
    const [vs, v] = await call(base, 'GET', `/v1/audit/verify?checkpointSeq=${c.seq}&checkpointHash=${c.hash}`, key);
    assert.equal(vs, 200, JSON.stringify(v));
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.ok(['matched', 'beforeAnchor'].includes(v.checkpoint) || c.seq === 0, JSON.stringify(v));
    const [bs, b] = await call(base, 'GET', `/v1/audit/verify?checkpointSeq=${c.seq}`, key);
    assert.deepEqual([bs, b.error.code], [400, 'invalid_input'], base);
  }
});

test('one viewer token is revoked by its id on both runtimes; the others keep working', async () => {
  const a = worker.keys['edge-a'];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    const [, one] = await call(base, 'POST', '/v1/viewer-tokens', admin, {});
    const [, other] = await call(base, 'POST', '/v1/viewer-tokens', admin, {});
    assert.match(one.id, /^[0-9A-Z]{26}$/, JSON.stringify(one));
    assert.equal((await call(base, 'DELETE', `/v1/viewer-tokens/${one.id}`, admin))[0], 204);
    const [s1, e] = await call(base, 'GET', '/v1/session', one.token);
    assert.deepEqual([s1, e.error.code], [401, 'unauthorized'], base);
    assert.equal((await call(base, 'GET', '/v1/session', other.token))[0], 200, base);
    const [s2, bad] = await call(base, 'DELETE', '/v1/viewer-tokens/a%20b', admin);
    assert.deepEqual([s2, bad.error.code], [400, 'invalid_input'], base);
  }
});

// Issue 26.7: an Idempotency-Key is bound to the whole request on both runtimes.
test('an Idempotency-Key reused with another batch is 409 on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const own = (n) => Array.from({ length: n }, (_, i) => ({ id: `idem-own-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
  for (const [base, key] of [[worker.url, a.ingest], [hostUrl, hostKey]]) {
    const k = { 'Idempotency-Key': 'parity-own-ids' };
    const [s1] = await call(base, 'POST', '/v1/activities', key, own(2), k);
    assert.ok([201, 202].includes(s1), `${base} ${s1}`);
    const [s2] = await call(base, 'POST', '/v1/activities', key, own(2), k);
    assert.ok([200, 202].includes(s2), `${base}: a retry ${s2}`);
    const [s3, e] = await call(base, 'POST', '/v1/activities', key, own(3), k);
    assert.deepEqual([s3, e.error.code, e.error.message], [409, 'conflict', 'this Idempotency-Key was used for a different request'], base);
  }
});

// Issue 27 (first slice): the ledger answers alike — same kinds, same chain of balances.
test('the credit ledger reads alike on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  for (const [base, read] of [[worker.url, a.read], [hostUrl, hostKey]]) {
    // The edge's consumer may still be writing earlier tests' batches: read until the
    // newest entry and the balance agree.
    const page = await until('the ledger to catch up with the balance', async () => {
      const [status, p] = await call(base, 'GET', '/v1/credits/ledger?limit=50', read);
      assert.equal(status, 200, JSON.stringify(p));
      const [, balance] = await call(base, 'GET', '/v1/credits/balance', read);
      return p.entries.length >= 1 && p.entries[0].balance === balance.balance ? p : null;
    });
    for (const e of page.entries) {
      assert.deepEqual(Object.keys(e).sort(), ['at', 'balance', 'delta', 'detail', 'entry', 'kind'], base);
      assert.ok(['grant', 'usage', 'expiry', 'void', 'adjustment'].includes(e.kind), e.kind);
    }
    for (let i = 1; i < page.entries.length; i += 1) {
      assert.ok(page.entries[i - 1].entry > page.entries[i].entry, 'newest first');
    }
    const [bs, bad] = await call(base, 'GET', '/v1/credits/ledger?kind=refund', read);
    assert.deepEqual([bs, bad.error.code], [400, 'invalid_input'], base);
  }
});

// Issue 27: grants with a priority, an expiry or a later start, voids, adjustments and
// the balance by grant answer alike — statuses, shapes, burn-down and refusals.
test('credit grants, voids, adjustments and the balance by grant answer alike', async () => {
  const a = worker.keys['edge-a'];
  const later = new Date(Date.now() + 86_400_000).toISOString();
  const results = [];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    // Earlier tests' batches may still be charged by the edge's consumer.
    await until('the ledger to catch up with the balance', async () => {
      const [, p] = await call(base, 'GET', '/v1/credits/ledger?limit=1', admin);
      const [, b] = await call(base, 'GET', '/v1/credits/balance', admin);
      return p.entries[0]?.balance === b.balance ? true : null;
    });
    const out = [];
    const [s1, g] = await call(base, 'POST', '/v1/credits/grants', admin, { amount: '3', priority: 5, expiresAt: later, externalId: 'inv-9', reason: 'parity' });
    out.push(s1, Object.keys(g).sort(), Object.keys(g.grant).sort(), g.grant.status, g.grant.priority, g.grant.remaining);
    const [s2, b] = await call(base, 'GET', '/v1/credits/balance', admin);
    out.push(s2, Object.keys(b).sort(), b.grants[0].grantId === g.grant.id, b.grants[0].expiresAt === g.grant.expiresAt);
    const [s3, p] = await call(base, 'POST', '/v1/credits/grants', admin, { amount: '2', effectiveAt: later });
    out.push(s3, p.grant.status);
    const [s4, list] = await call(base, 'GET', '/v1/credits/grants?status=pending&limit=1', admin);
    out.push(s4, list.grants.length, list.grants[0].id === p.grant.id);
    const [s5, v] = await call(base, 'POST', `/v1/credits/grants/${p.grant.id}/void`, admin);
    out.push(s5, v.grant.status, v.grant.remaining, v.balance === b.balance);
    const [s6, e6] = await call(base, 'POST', `/v1/credits/grants/${p.grant.id}/void`, admin);
    out.push(s6, e6.error.code);
    const [s7, adj] = await call(base, 'POST', '/v1/credits/adjustments', admin, { amount: '1', reason: 'parity refund' }, { 'Idempotency-Key': 'parity-adj' });
    out.push(s7, Object.keys(adj).sort());
    const [s7b, again] = await call(base, 'POST', '/v1/credits/adjustments', admin, { amount: '1', reason: 'parity refund' }, { 'Idempotency-Key': 'parity-adj' });
    out.push(s7b, again.balance === adj.balance);
    const [, active] = await call(base, 'GET', '/v1/credits/grants?status=active', admin);
    out.push(active.grants.find((x) => x.id === g.grant.id).remaining);
    const [s8, e8] = await call(base, 'POST', '/v1/credits/adjustments', admin, { amount: '100000000000000', reason: 'too much' });
    out.push(s8, e8.error.code);
    const [s9, e9] = await call(base, 'POST', '/v1/credits/grants', admin, { amount: '1', priority: 101 });
    out.push(s9, e9.error.code, e9.error.message);
    const [s10, e10] = await call(base, 'GET', '/v1/credits/grants?status=open', admin);
    out.push(s10, e10.error.message);
    results.push(out);
  }
  assert.deepEqual(results[0], results[1]);
  // The priority-5 grant was spent first: 3 - 1.
  assert.ok(results[0].includes('2.0000'), JSON.stringify(results[0]));
});

// Issue 26.7: keys and viewer tokens honour an Idempotency-Key alike — a retried key
// creation names the key it made without its text, a retried token is the same token.
test('keys and viewer tokens are idempotent by key on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    const out = [];
    const body = { scopes: ['read'], label: 'parity-idem' };
    const k = { 'Idempotency-Key': 'parity-key-1' };
    const [s1, made] = await call(base, 'POST', '/v1/keys', admin, body, k);
    const [s2, again] = await call(base, 'POST', '/v1/keys', admin, body, k);
    const [s3, e3] = await call(base, 'POST', '/v1/keys', admin, { scopes: ['admin'] }, k);
    out.push(s1, typeof made.key, s2, again.id === made.id, 'key' in again, Object.keys(again).sort(), s3, e3.error.code);
    const [, listed] = await call(base, 'GET', '/v1/keys', admin);
    out.push(listed.keys.filter((x) => x.label === 'parity-idem').length);
    const t = { 'Idempotency-Key': 'parity-token-1' };
    const [t1s, t1] = await call(base, 'POST', '/v1/viewer-tokens', admin, { ttlSeconds: 600 }, t);
    const [t2s, t2] = await call(base, 'POST', '/v1/viewer-tokens', admin, { ttlSeconds: 600 }, t);
    const [t3s] = await call(base, 'POST', '/v1/viewer-tokens', admin, { ttlSeconds: 60 }, t);
    out.push(t1s, t2s, t1.token === t2.token, t1.id === t2.id, t3s);
    results.push(out);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(0, 5), [201, 'string', 200, true, false]);
});

// Issue 26.12 at the edge: a department token's reports, dashboard and listings count
// what was recorded under its subtree — a user who moves in brings no earlier history.
test('a department token does not count a moved user\'s earlier history on either runtime', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [base, admin, ingest] of [[worker.url, a.admin, a.ingest], [hostUrl, hostKey, hostKey]]) {
    const mine = async () => {
      const [, page] = await call(base, 'GET', '/v1/users/user-300/activities?since=3650d&limit=500', admin);
      return page.activities.filter((x) => x.id.startsWith('moved-')).length;
    };
    const before = [0, 1, 2].map((i) => ({ id: `moved-before-${i}`, userId: 'user-300', operation: 'crm.leads.read' }));
    assert.ok([201, 202].includes((await call(base, 'POST', '/v1/activities', ingest, before))[0]));
    await until('the earlier records', async () => ((await mine()) === 3 ? true : null));
    const [ps, patched] = await call(base, 'PATCH', '/v1/directory', admin,
      { upsert: { users: [{ id: 'user-300', name: 'Moved', departmentId: 'dept-sales-emea', roles: ['role-admin'] }] } });
    assert.equal(ps, 200, JSON.stringify(patched));
    const after = [0, 1].map((i) => ({ id: `moved-after-${i}`, userId: 'user-300', operation: 'crm.leads.read' }));
    assert.ok([201, 202].includes((await call(base, 'POST', '/v1/activities', ingest, after))[0]));
    await until('the later records', async () => ((await mine()) === 5 ? true : null));
    const [, token] = await call(base, 'POST', '/v1/viewer-tokens', admin, { departmentId: 'dept-sales' });
    const [rs, report] = await call(base, 'GET', '/v1/reports/users/user-300?since=3650d', token.token);
    const [, whole] = await call(base, 'GET', '/v1/reports/users/user-300?since=3650d', admin);
    const [ds, dash] = await call(base, 'GET', '/v1/dashboards/users/user-300', token.token);
    const [, listed] = await call(base, 'GET', '/v1/users/user-300/activities?since=3650d&limit=500', token.token);
    results.push([rs, report.totalActivities, ds, dash.report.totalActivities, listed.activities.map((x) => x.id).sort(),
      whole.totalActivities > report.totalActivities]);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(0, 5), [200, 2, 200, 2, ['moved-after-0', 'moved-after-1']]);
});

// Issue 25.11: a tenant, its opening balance and its first admin key over the API on
// both runtimes — at the edge on the shard asked for — ready to take a directory and
// activities; only the operator's secret opens it.
test('the operator provisions a tenant alike on both runtimes', async () => {
  const fixture = JSON.parse(readFileSync(join(root, 'tests/conformance/fixtures/acme.json'), 'utf8'));
  const results = [];
  for (const [base, shard] of [[worker.url, 1], [hostUrl, 0]]) {
    const body = { id: 'prov-1', name: 'Provisioned', timezone: 'Europe/Berlin', balance: '25', shard };
    const [s1, made] = await call(base, 'POST', '/v1/operator/tenants', OPERATOR, body);
    assert.equal(s1, 201, JSON.stringify(made));
    assert.equal(made.shard, shard);
    const admin = made.adminKey.key;
    const [s2, b] = await call(base, 'GET', '/v1/credits/balance', admin);
    const [s3, e3] = await call(base, 'POST', '/v1/operator/tenants', OPERATOR, body);
    const [s4, e4] = await call(base, 'POST', '/v1/operator/tenants', admin, { id: 'prov-2', name: 'x' });
    const [s5, e5] = await call(base, 'POST', '/v1/operator/tenants', OPERATOR, { id: 'prov-2', name: 'x', shard: 9 });
    const [s6] = await call(base, 'PUT', '/v1/directory', admin, fixture.directory);
    const batch = [0, 1, 2].map((i) => ({ id: `prov-a-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
    const [s7] = await call(base, 'POST', '/v1/activities?sync=true', admin, batch);
    const [, v] = await call(base, 'GET', '/v1/audit/verify', admin);
    results.push([s1, Object.keys(made).sort(), made.adminKey.scopes, s2, b.balance, b.grants[0].grantId,
      s3, e3.error.code, s4, e4.error.code, s5, e5.error.code, s6, s7, v.ok, v.verified, v.ledgerEntries]);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(3, 10), [200, '25.0000', 'opening-balance', 409, 'conflict', 401, 'unauthorized']);
});

// Issue 25.6: verification pages alike — `limit` records per call, a signed `resume`
// token to continue — and an edited token is refused on both runtimes.
test('verification pages with resume tokens alike on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [base, read] of [[worker.url, a.read], [hostUrl, hostKey]]) {
    const [, whole] = await call(base, 'GET', '/v1/audit/verify', read);
    let [status, v] = await call(base, 'GET', '/v1/audit/verify?limit=50', read);
    assert.equal(status, 200, JSON.stringify(v));
    const first = v;
    let calls = 1;
    while (v.complete === false) {
      [status, v] = await call(base, 'GET', `/v1/audit/verify?limit=50&resume=${v.resume}`, read);
      assert.equal(status, 200, JSON.stringify(v));
      calls += 1;
    }
    const [body, sig] = first.resume.split('.');
    const edited = Buffer.from(Buffer.from(body, 'hex').toString().replace('"after":50', '"after":60')).toString('hex');
    const [fs, fe] = await call(base, 'GET', `/v1/audit/verify?resume=${edited}.${sig}`, read);
    results.push([whole.ok, whole.complete, v.ok, v.complete, v.verified === whole.verified,
      v.ledgerEntries === whole.ledgerEntries, calls === Math.ceil(whole.verified / 50), fs, fe.error.code]);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0], [true, true, true, true, true, true, true, 400, 'invalid_input']);
});

// Issue 27: credit alerts cross alike — fired once in the crossing write, resolved by
// the grant that lifts the balance — on both runtimes.
test('credit alerts fire and resolve alike on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    const [, b0] = await call(base, 'GET', '/v1/credits/balance', admin);
    // A threshold just under the balance now: one more read crosses it.
    const units = BigInt(b0.balance.replace('.', ''));
    const threshold = units - 1n;
    const below = `${threshold / 10000n}.${String(threshold % 10000n).padStart(4, '0')}`;
    const [, doc] = await call(base, 'GET', '/v1/policy', admin);
    const policy = { ...doc.policy, creditAlerts: [{ id: 'parity-low', balanceBelow: below }] };
    const [ps] = await call(base, 'PUT', '/v1/policy', admin, policy);
    const [, before] = await call(base, 'GET', '/v1/credits/alerts', admin);
    const [is] = await call(base, 'POST', '/v1/activities?sync=true', admin,
      [{ id: `parity-alert-${base.length}`, userId: 'user-123', operation: 'crm.leads.read' }]);
    const [, fired] = await call(base, 'GET', '/v1/credits/alerts', admin);
    const [gs] = await call(base, 'POST', '/v1/credits/grants', admin, { amount: '1' });
    const [, resolved] = await call(base, 'GET', '/v1/credits/alerts?limit=1', admin);
    const [bad] = await call(base, 'PUT', '/v1/policy', admin, { ...policy, creditAlerts: [{ id: 'x' }] });
    const [, restored] = await call(base, 'PUT', '/v1/policy', admin, { ...doc.policy });
    results.push([ps, is, fired.alerts.length - before.alerts.length, fired.alerts[0].ruleId, fired.alerts[0].state,
      Object.keys(fired.alerts[0]).sort(), gs, resolved.alerts[0].state, resolved.alerts.length, bad, typeof restored]);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(0, 5), [200, 201, 1, 'parity-low', 'fired']);
});

// Issue 27: webhook endpoints alike on both runtimes — inward URLs refused, the secret
// shown once, alert events delivered signed (checked by the standardwebhooks library),
// retried after a 503, logged, re-sent with the same webhook-id, removed.
test('webhooks deliver signed credit alert events alike on both runtimes', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [name, base, admin] of [['edge', worker.url, a.admin], ['host', hostUrl, hostKey]]) {
    const out = [];
    const hook = `http://127.0.0.1:${receiver.address().port}/hook/${name}`;
    const types = ['credits.alert.fired', 'credits.alert.resolved'];
    for (const url of ['https://10.0.0.1/x', 'http://127.0.0.2/x', 'https://169.254.169.254/latest/meta-data/',
      'https://localhost/x', 'http://example.com/x', 'https://[::1]/x', 'https://u:p@example.com/x', 'https://2130706434/']) {
      const [s, e] = await call(base, 'POST', '/v1/webhooks', admin, { url, eventTypes: types });
      out.push(s, e.error.code);
    }
    const [st, et] = await call(base, 'POST', '/v1/webhooks', admin, { url: hook, eventTypes: ['activity.created'] });
    const [su] = await call(base, 'POST', '/v1/webhooks', admin, { url: hook, eventTypes: types, extra: 1 });
    out.push(st, et.error.message, su);
    const [s1, made] = await call(base, 'POST', '/v1/webhooks', admin, { url: hook, eventTypes: types, description: 'parity' });
    assert.equal(s1, 201, JSON.stringify(made));
    assert.match(made.secret, /^whsec_/);
    receivers[name] = { secret: made.secret, got: [] };
    const [s2, list] = await call(base, 'GET', '/v1/webhooks', admin);
    out.push(s1, Object.keys(made).sort(), s2, list.webhooks.length, Object.keys(list.webhooks[0]).sort());

    // Cross a threshold and lift it again (as the alerts test does).
    const [, b0] = await call(base, 'GET', '/v1/credits/balance', admin);
    const threshold = BigInt(b0.balance.replace('.', '')) - 1n;
    const below = `${threshold / 10000n}.${String(threshold % 10000n).padStart(4, '0')}`;
    const [, doc] = await call(base, 'GET', '/v1/policy', admin);
    await call(base, 'PUT', '/v1/policy', admin, { ...doc.policy, creditAlerts: [{ id: 'hook-low', balanceBelow: below }] });
    const [is] = await call(base, 'POST', '/v1/activities?sync=true', admin,
      [{ id: `hook-alert-${name}`, userId: 'user-123', operation: 'crm.leads.read' }]);
    await call(base, 'POST', '/v1/credits/grants', admin, { amount: '1' });
    await call(base, 'PUT', '/v1/policy', admin, { ...doc.policy });
    out.push(is);

    // The edge delivers from its minute trigger, run here by hand; crm-host by itself.
    const delivered = async (n) => until(`${name}: ${n} deliveries`, async () => {
      if (base === worker.url) await fetch(`${base}/__scheduled?cron=*+*+*+*+*`);
      await new Promise((r) => setTimeout(r, 750));
      return receivers[name].got.length >= n ? true : null;
    }, 60_000);
    // The fired alert's first attempt is answered 503 and retried 5 s later.
    await delivered(3);
    const got = receivers[name].got;
    const fired = got.filter((g) => g.type === 'credits.alert.fired');
    out.push(got.map((g) => g.type).sort(), fired.length, fired[0].id === fired[1].id, fired[0].data.ruleId,
      fired[0].data.state, got.every((g) => typeof g.data.tenantId === 'string' && g.timestamp === g.data.at));
    const [s3, log] = await call(base, 'GET', `/v1/webhooks/${made.id}/deliveries`, admin);
    const first = log.deliveries.at(-1);
    out.push(s3, log.deliveries.length, log.deliveries.map((d) => [d.eventType, d.status, d.attempts, d.lastAttempt.statusCode]),
      Object.keys(first).sort(), first.payload.type, first.id === `alert-${first.payload.data.entry}`);
    const [s4, again] = await call(base, 'POST', `/v1/webhooks/${made.id}/deliveries/${first.id}/resend`, admin);
    out.push(s4, again.status, again.attempts);
    await delivered(4);
    out.push(got[3].id === fired[0].id);
    const [s5, missing] = await call(base, 'POST', `/v1/webhooks/${made.id}/deliveries/alert-999999/resend`, admin);
    const [s6, page] = await call(base, 'GET', `/v1/webhooks/${made.id}/deliveries?limit=1`, admin);
    const [s7, next] = await call(base, 'GET', `/v1/webhooks/${made.id}/deliveries?limit=1&cursor=${page.nextCursor}`, admin);
    out.push(s5, missing.error.code, s6, page.deliveries.length, s7, next.deliveries[0].id === first.id);
    const [s8] = await call(base, 'DELETE', `/v1/webhooks/${made.id}`, admin);
    const [s9, e9] = await call(base, 'DELETE', `/v1/webhooks/${made.id}`, admin);
    const [s10] = await call(base, 'GET', `/v1/webhooks/${made.id}/deliveries`, admin);
    const [, after] = await call(base, 'GET', '/v1/webhooks', admin);
    out.push(s8, s9, e9.error.code, s10, after.webhooks.length);
    results.push(out);
  }
  assert.equal(badSignatures, 0, 'every delivery verifies with the standardwebhooks library');
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(0, 16), Array(8).fill(0).flatMap(() => [400, 'invalid_input']));
  assert.deepEqual(results[0].slice(19, 40), [
    201,
    ['createdAt', 'description', 'eventTypes', 'id', 'secret', 'url'], 200, 1, ['createdAt', 'description', 'eventTypes', 'id', 'url'],
    201, ['credits.alert.fired', 'credits.alert.fired', 'credits.alert.resolved'], 2, true, 'hook-low', 'fired', true,
    200, 2, [['credits.alert.resolved', 'delivered', 1, 204], ['credits.alert.fired', 'delivered', 2, 204]],
    ['attempts', 'createdAt', 'deliveredAt', 'eventType', 'id', 'lastAttempt', 'payload', 'status'], 'credits.alert.fired', true,
    202, 'pending', 0]);
  assert.deepEqual(results[0].slice(40), [true, 404, 'not_found', 200, 1, 200, true, 204, 404, 'not_found', 404, 0]);
});

// Last: it removes user-402 from both directories.
test('erasure shreds a subject alike on both runtimes and both chains still verify', async () => {
  const a = worker.keys['edge-a'];
  const results = [];
  for (const [base, admin] of [[worker.url, a.admin], [hostUrl, hostKey]]) {
    const out = [];
    const [, doc] = await call(base, 'GET', '/v1/policy', admin);
    assert.equal((await call(base, 'PUT', '/v1/policy', admin, { ...doc.policy, personalKeys: ['phone'] }))[0], 200);
    const batch = Array.from({ length: 6 }, (_, i) => ({
      id: `erase-${i}`, userId: ['user-402', 'user-123'][i % 2], operation: 'crm.leads.read',
      metadata: { phone: `+47-${i}`, stage: 'open' },
      compliance: { location: ['Tromsø', 'Lima'][i % 2], authenticationMethod: 'sso', userAgent: 'parity/1' },
    }));
    assert.equal((await call(base, 'POST', '/v1/activities?sync=true', admin, batch))[0], 201);
    const [, open] = await call(base, 'GET', '/v1/activities/erase-0', admin);
    out.push(open.userContext.user.name, open.metadata.phone, open.compliance.location, open.personal.state);
    for (const path of ['/v1/subjects/user-402/erase', '/v1/subjects/nobody-here/erase', '/v1/subjects/a%20b/erase']) {
      const [s, e] = await call(base, 'POST', path, admin);
      out.push(s, e.error.code, e.error.message);
    }
    const [sp] = await call(base, 'PATCH', '/v1/directory', admin, { remove: { users: ['user-402'] } });
    const [se, erased] = await call(base, 'POST', '/v1/subjects/user-402/erase', admin);
    out.push(sp, se, erased.subject, erased.keysDestroyed, erased.rowsScrubbed >= 3, erased.complete,
      Object.keys(erased).sort(), Object.keys(erased.record).sort());
    const [, gone] = await call(base, 'GET', '/v1/activities/erase-2', admin);
    const [, kept] = await call(base, 'GET', '/v1/activities/erase-1', admin);
    out.push(gone.userContext.user.name, gone.userContext.user.email ?? null, gone.metadata, gone.compliance.location,
      gone.compliance.ipAddress, gone.compliance.userAgent, gone.personal.state, kept.userContext.user.name, kept.metadata.phone);
    const r = await fetch(`${base}/v1/export`, { headers: { Authorization: `Bearer ${admin}` } });
    const text = await r.text();
    out.push(['Ann Tier A', 'ann@acme.test', 'Tromsø', '+47-0', '+47-2', '+47-4'].filter((s) => text.includes(s)));
    const last = text.trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    out.push(last.operation, last.userId, last.metadata.erasedSubject, last.metadata.keysDestroyed);
    const [, v] = await call(base, 'GET', '/v1/audit/verify', admin);
    out.push(v.ok, v.complete);
    results.push(out);
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[0].slice(0, 4), ['Ann Tier A', '+47-0', 'Tromsø', 'open']);
  assert.deepEqual(results[0].slice(4, 10).filter((_, i) => i % 3 !== 2), [409, 'conflict', 404, 'not_found']);
  assert.deepEqual(results[0].slice(13, 19), [200, 200, 'user-402', 1, true, true]);
  assert.deepEqual(results[0].slice(21), ['[erased]', null, { phone: '[erased]', stage: 'open' }, null, null, null, 'erased',
    'John Doe', '+47-1', [], 'subject.erase', 'user-402', 'user-402', 1, true, true]);
});

// Every operation of the API table, called alike on both runtimes with each kind of
// credential, a body neither accepts, and an unknown query parameter: the same status,
// error code and message, and for answers the same members (issue 24's parity walk).
test('every operation answers alike on both runtimes: status, error, members', async () => {
  const a = worker.keys['edge-a'];
  const [, hostRead] = await call(hostUrl, 'POST', '/v1/keys', hostKey, { scopes: ['read'] });
  const [, hostIngest] = await call(hostUrl, 'POST', '/v1/keys', hostKey, { scopes: ['ingest'] });
  const viewer = async (base, key) => (await call(base, 'POST', '/v1/viewer-tokens', key, { userId: 'user-200' }))[1].token;
  const credentials = {
    admin: [a.admin, hostKey],
    read: [a.read, hostRead.key],
    ingest: [a.ingest, hostIngest.key],
    'user viewer': [await viewer(worker.url, a.admin), await viewer(hostUrl, hostKey)],
    none: [null, null],
    garbage: ['crm_garbage', 'crm_garbage'],
  };
  // Served by one runtime only, by design (501 at the edge, with the reason).
  const edgeOnly501 = new Set(['createLead', 'listLeads', 'getLead', 'updateLead', 'getPrometheusMetrics']);
  const hostOnly501 = new Set(['archiveHistory']);
  // Answers that describe the runtime itself, not the tenant: status only.
  const runtimeDescriptions = new Set(['getReadiness', 'getMetrics', 'getOpenApiDocument', 'getHealth', 'exportActivities']);
  const pathValue = (template, name) => {
    if (name === 'type') return 'lead';
    if (name === 'operation') return 'crm.leads.read';
    if (template.includes('/users/')) return 'user-200';
    if (template.includes('/departments/')) return 'dept-sales';
    return 'parity-missing';
  };
  const send = async (base, method, path, key, body) => {
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`${base}${path}`, { method, headers, body });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* NDJSON or empty */ }
    return { status: r.status, json, retry: r.headers.get('retry-after') };
  };
  const [, doc] = await call(worker.url, 'GET', '/v1/openapi.json', a.read);
  let compared = 0;
  const mismatches = [];
  const check = (ok, message) => { if (!ok) mismatches.push(message); };
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const path = template.replace(/\{(\w+)\}/g, (_, n) => pathValue(template, n));
      const withBody = ['post', 'put', 'patch'].includes(method);
      const requests = [[path, withBody ? '[1]' : undefined], [`${path}?parityUnknown=1`, withBody ? '[1]' : undefined]];
      for (const [who, [wk, hk]] of Object.entries(credentials)) {
        for (const [p, body] of requests) {
          const what = `${op.operationId} ${method.toUpperCase()} ${p} as ${who}`;
          const w = await send(worker.url, method.toUpperCase(), p, wk, body);
          const h = await send(hostUrl, method.toUpperCase(), p, hk, body);
          compared += 1;
          if (edgeOnly501.has(op.operationId)) {
            check([400, 401, 501].includes(w.status), `${what}: worker ${w.status}`);
            continue;
          }
          if (hostOnly501.has(op.operationId)) {
            check([400, 401, 403, 501].includes(h.status), `${what}: host ${h.status}`);
            continue;
          }
          if (w.status !== h.status) {
            check(false, `${what}: worker ${w.status} ${JSON.stringify(w.json)?.slice(0, 300)} host ${h.status} ${JSON.stringify(h.json)?.slice(0, 300)}`);
          } else if (w.status >= 400) {
            const [we, he] = [[w.json?.error?.code, w.json?.error?.message, w.retry], [h.json?.error?.code, h.json?.error?.message, h.retry]];
            check(JSON.stringify(we) === JSON.stringify(he), `${what}: worker ${JSON.stringify(we)} host ${JSON.stringify(he)}`);
          } else if (!runtimeDescriptions.has(op.operationId) && w.json && typeof w.json === 'object' && !Array.isArray(w.json)) {
            const [wm, hm] = [Object.keys(w.json).sort(), Object.keys(h.json ?? {}).sort()];
            check(JSON.stringify(wm) === JSON.stringify(hm), `${what}: members worker ${wm} host ${hm}`);
          }
        }
      }
    }
  }
  assert.deepEqual(mismatches, []);
  assert.ok(compared > 400, `${compared} requests compared`);
});
