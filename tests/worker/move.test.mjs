// Issue 25: a tenant moved between shards by `cargo xtask move-tenant` under a running
// worker: frozen (503 with Retry-After, nothing written), copied, its chain verified
// on the new shard, switched, and its old rows removed — and it answers exactly as
// before. Placements are cached 1 s here (`PLACEMENT_CACHE_MS`) instead of 60 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startWorker, call as callAt, until, d1, root } from './harness.mjs';

let worker, url, keys;
const call = (...args) => callAt(url, ...args);
const activity = (id, extra = {}) => ({ id, userId: 'user-123', operation: 'crm.leads.read', ...extra });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  worker = await startWorker({ PLACEMENT_CACHE_MS: '1000' });
  ({ url, keys } = worker);
});

after(() => worker?.stop());

async function exported(key) {
  const r = await fetch(`${url}/v1/export`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(r.status, 200);
  return r.text();
}

const moveTenant = (tenant, to) => execFileSync('cargo', ['run', '-q', '-p', 'xtask', '--', 'move-tenant',
  '--tenant', tenant, '--to', String(to), '--config', worker.config, '--persist-to', worker.persist, '--settle-seconds', '2'],
{ cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('a tenant moves to another shard with its chain, credits and keys, and answers as before', async () => {
  const a = keys['edge-a'];
  assert.equal(a.shard, 0);
  const [s1] = await call('POST', '/v1/activities?sync=true', a.ingest,
    Array.from({ length: 25 }, (_, i) => activity(`mv-${i}`, { metadata: { n: i } })));
  assert.equal(s1, 201);
  const [g] = await call('POST', '/v1/credits/grants', a.admin, { amount: '12.3456', reason: 'before the move' });
  assert.equal(g, 200);
  assert.equal((await call('POST', '/v1/activities', a.ingest, [activity('mv-queued')]))[0], 202);
  await until('the queued packet', async () => (await call('GET', '/v1/activities/mv-queued', a.read))[0] === 200);
  // A window with fixed ends, so the two reports are comparable.
  const end = Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 3_600_000;
  const window = `from=${new Date(end - 2 * 86_400_000).toISOString()}&to=${new Date(end).toISOString()}`;
  const before = {
    export: await exported(a.read),
    balance: (await call('GET', '/v1/credits/balance', a.admin))[1],
    grants: (await call('GET', '/v1/credits/grants', a.admin))[1],
    report: (await call('GET', `/v1/reports?${window}`, a.read))[1],
  };
  // While frozen, the tenant is refused with a retry hint and nothing is written.
  d1(worker, 0, "INSERT INTO tenant_shards (tenant_id, shard, moving) VALUES ('edge-a', 0, 1) ON CONFLICT (tenant_id) DO UPDATE SET moving = 1");
  await sleep(1500);
  const [frozen, refusal] = await call('POST', '/v1/activities?sync=true', a.ingest, [activity('mv-frozen')]);
  assert.equal(frozen, 503, JSON.stringify(refusal));
  assert.equal(refusal.error.code, 'unavailable');
  assert.equal((await call('GET', '/v1/activities', a.read))[0], 503);

  const log = moveTenant('edge-a', 1);
  assert.match(log, /^$/, 'the move reports on stderr only');
  const [placed] = d1(worker, 0, "SELECT shard, moving FROM tenant_shards WHERE tenant_id = 'edge-a'");
  assert.deepEqual(placed, { shard: 1, moving: 0 });
  for (const table of ['activities', 'credit_grants', 'credit_ledger', 'api_keys', 'report_rollups']) {
    const [{ n }] = d1(worker, 0, `SELECT COUNT(*) AS n FROM ${table} WHERE tenant_id = 'edge-a'`);
    assert.equal(n, 0, `${table} left on shard 0`);
  }
  assert.equal(d1(worker, 0, "SELECT id FROM tenants WHERE id = 'edge-a'").length, 0);
  const [{ n: moved }] = d1(worker, 1, "SELECT COUNT(*) AS n FROM activities WHERE tenant_id = 'edge-a'");
  assert.equal(moved, 26);

  await sleep(1500);
  assert.equal(await exported(a.read), before.export);
  assert.deepEqual((await call('GET', '/v1/credits/balance', a.admin))[1], before.balance);
  assert.deepEqual((await call('GET', '/v1/credits/grants', a.admin))[1], before.grants);
  assert.deepEqual((await call('GET', `/v1/reports?${window}`, a.read))[1], before.report);
  const [, verified] = await call('GET', '/v1/audit/verify', a.read);
  assert.equal(verified.ok, true, JSON.stringify(verified));
  // New writes land on the new shard and continue the chain.
  const [s2, written] = await call('POST', '/v1/activities?sync=true', a.ingest, [activity('mv-after')]);
  assert.equal(s2, 201, JSON.stringify(written));
  const [head] = d1(worker, 1, "SELECT head_seq AS h FROM tenants WHERE id = 'edge-a'");
  assert.equal(head.h, 27);
  // The other tenant on the target shard is untouched.
  const [, other] = await call('GET', '/v1/audit/verify', keys['edge-b'].read);
  assert.equal(other.ok, true);
});

test('a move to the shard a tenant is on, or of a tenant that does not exist, is refused', () => {
  assert.throws(() => moveTenant('edge-b', 1), /already/);
  assert.throws(() => moveTenant('nobody', 1), /holds no tenant/);
});
