// A scripted attacker at the edge: with every credential of tenant edge-a (keys, a
// tenant-wide and a user viewer token, a token forged for edge-b), it calls every
// endpoint of the worker's own OpenAPI document with edge-b's ids in path, query and
// body. edge-b's data carries markers found nowhere else; none may come back, no answer
// may be a 5xx fault, forged tokens get 401, and edge-b is unchanged afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, call as callAt, until } from './harness.mjs';

let worker, url, keys;
const call = (...args) => callAt(url, ...args);
const MARKERS = ['Zed Secretbee', 'b-only-marker'];

async function raw(method, path, key, body) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return [r.status, await r.text()];
}

async function snapshot(admin) {
  const out = {};
  for (const p of ['/v1/credits/balance', '/v1/directory', '/v1/policy', '/v1/keys', '/v1/activities?since=3650d&limit=500']) {
    out[p] = (await call('GET', p, admin))[1];
  }
  return out;
}

before(async () => {
  worker = await startWorker();
  ({ url, keys } = worker);
});

after(() => worker?.stop());

test('edge-a credentials reach nothing of edge-b', async () => {
  const a = keys['edge-a'];
  const b = keys['edge-b'];
  assert.equal((await call('PATCH', '/v1/directory', b.admin, { upsert: { users: [{ id: 'user-b-only', name: 'Zed Secretbee',
    departmentId: 'dept-sales-emea', roles: ['role-sales-rep'] }] } }))[0], 200);
  assert.equal((await call('POST', '/v1/activities?sync=true', b.ingest,
    { id: 'b-act-1', userId: 'user-123', operation: 'crm.leads.read', metadata: { note: 'b-only-marker' } }))[0], 201);
  const [, bKey] = await call('POST', '/v1/keys', b.admin, { scopes: ['read'], label: 'b-key' });
  await until('edge-b listing', async () => (await call('GET', '/v1/activities', b.read))[1].activities?.length >= 1);
  const beforeB = await snapshot(b.admin);

  const [, tenantToken] = await call('POST', '/v1/viewer-tokens', a.admin, {});
  const [, userToken] = await call('POST', '/v1/viewer-tokens', a.admin, { userId: 'user-200' });
  // edge-a's valid signature over claims that name edge-b.
  const [prefix, , mac] = tenantToken.token.split('.');
  const claims = Buffer.from(JSON.stringify({ tenant: 'edge-b', scope: 'tenant', expiresAt: Date.now() + 3_600_000 })).toString('hex');
  const credentials = {
    'a-admin': a.admin, 'a-ingest': a.ingest, 'a-read': a.read, 'a-viewer': tenantToken.token,
    'a-user-viewer': userToken.token, 'forged-from-a': `${prefix}.${claims}.${mac}`, 'garbage': 'vt1.00.00',
  };
  const [, doc] = await call('GET', '/v1/openapi.json', 'none');
  const pathValues = { id: 'user-b-only', operation: 'crm.leads.read' };
  const queryValues = { userId: 'user-b-only', departmentId: 'dept-sales-emea', since: '3650d', format: 'ndjson', afterSeq: '0' };
  const bodies = [
    { userId: 'user-b-only', operation: 'crm.leads.read', permission: 'crm.leads.read', id: 'b-act-1' },
    [{ id: 'b-act-1', userId: 'user-123', operation: 'crm.leads.read' }],
  ];
  let calls = 0;
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const concrete = template.replace(/\{(\w+)\}/g, (_, n) => (template.startsWith('/v1/keys/') ? bKey.id : (pathValues[n] ?? 'b-act-1')));
      const paths = [concrete];
      for (const p of op.parameters ?? []) {
        if (p.in === 'query' && queryValues[p.name]) paths.push(`${concrete}?${p.name}=${encodeURIComponent(queryValues[p.name])}`);
      }
      const withBody = ['post', 'put', 'patch'].includes(method);
      for (const [who, key] of Object.entries(credentials)) {
        for (const path of paths) {
          for (const body of withBody ? bodies : [undefined]) {
            const [status, text] = await raw(method.toUpperCase(), path, key, body);
            calls += 1;
            assert.ok(status < 500 || status === 501, `${who} ${method} ${path}: ${status} ${text.slice(0, 200)}`);
            for (const m of MARKERS) assert.ok(!text.includes(m), `${who} ${method} ${path} leaked ${m}`);
            const isPublic = ['/healthz', '/readyz', '/metrics', '/v1/openapi.json'].includes(template) || template.startsWith('/v1/leads');
            // Provisioning takes the operator's secret, never a key: off here, it is 403.
            const operator = (op.security ?? []).some((s) => 'operator' in s);
            if (['forged-from-a', 'garbage'].includes(who) && !isPublic) {
              assert.equal(status, operator ? 403 : 401, `${who} ${method} ${path}: ${text.slice(0, 200)}`);
            }
          }
        }
      }
    }
  }
  assert.ok(calls > 300, `${calls} calls`);
  await new Promise((r) => setTimeout(r, 6000)); // anything A queued is written by now
  assert.deepEqual(await snapshot(b.admin), beforeB, 'edge-b is unchanged');
});
