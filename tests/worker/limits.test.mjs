// Issue 25: Cloudflare's per-invocation limits, which `wrangler dev` does not enforce,
// counted and enforced by the worker itself (`crates/worker/src/invocation.rs`). Here
// an invocation may make only 60 D1 queries (`INVOCATION_QUERIES`, which can only
// lower the platform's 1,000), so the queue consumer must split its writes across
// transactions and invocations, and a request that needs more is refused before D1
// is asked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, call as callAt, until } from './harness.mjs';

const QUERIES = 60;
let worker, url, keys;
const call = (...args) => callAt(url, ...args);
const users = ['user-123', 'user-200', 'user-402'];
const batch = (prefix, n) => Array.from({ length: n }, (_, i) => ({
  id: `${prefix}-${i}`, userId: users[i % 3], operation: 'crm.leads.read', metadata: { n: i },
}));

before(async () => {
  worker = await startWorker({ INVOCATION_QUERIES: String(QUERIES) });
  ({ url, keys } = worker);
});

after(() => worker?.stop());

async function exported(key) {
  const r = await fetch(`${url}/v1/export`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(r.status, 200);
  return (await r.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('queued packets larger than an invocation\'s queries are written in pieces, none lost', async () => {
  const a = keys['edge-a'];
  // Four packets of 300: one write of a packet alone needs more statements than 60.
  for (let p = 0; p < 4; p += 1) {
    const [s, body] = await call('POST', '/v1/activities', a.ingest, batch(`lim-${p}`, 300));
    assert.equal(s, 202, JSON.stringify(body));
  }
  const records = await until('all 1,200 written', async () => {
    const all = await exported(a.read);
    return all.filter((r) => r.id.startsWith('lim-')).length === 1200 ? all : null;
  }, 180_000);
  assert.deepEqual(records.map((r) => r.seq), records.map((_, i) => i + 1));
  assert.equal(new Set(records.map((r) => r.id)).size, records.length);
  const [, verified] = await call('GET', '/v1/audit/verify', a.read);
  assert.equal(verified.ok, true, JSON.stringify(verified));
  const [s, metrics] = await call('GET', '/v1/metrics', a.admin);
  assert.equal(s, 200);
  const { isolate } = metrics;
  assert.equal(isolate.maxInvocationQueries, QUERIES);
  assert.ok(isolate.peakInvocationQueries > 0 && isolate.peakInvocationQueries <= QUERIES, JSON.stringify(isolate));
  assert.ok(isolate.peakInvocationSubrequests <= isolate.maxInvocationSubrequests, JSON.stringify(isolate));
  // The isolate's wasm memory stayed far below the 128 MB it shares with JavaScript.
  assert.equal(isolate.memoryLimitBytes, 128 * 1024 * 1024);
  assert.ok(isolate.memoryHighWaterBytes > 0 && isolate.memoryHighWaterBytes < 64 * 1024 * 1024, JSON.stringify(isolate));
});

test('a request that needs more queries than an invocation has is refused and writes nothing', async () => {
  const b = keys['edge-b'];
  const [s, body] = await call('POST', '/v1/activities?sync=true', b.ingest, batch('lim-sync', 300));
  assert.equal(s, 500, JSON.stringify(body));
  assert.equal(body.error.code, 'internal');
  const [, page] = await call('GET', '/v1/activities?limit=10', b.read);
  assert.equal(page.activities.filter((r) => r.id.startsWith('lim-sync')).length, 0);
  // Within the allowance the same route works.
  const [ok, written] = await call('POST', '/v1/activities?sync=true', b.ingest, batch('lim-small', 3));
  assert.equal(ok, 201, JSON.stringify(written));
});
