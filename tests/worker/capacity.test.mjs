// Issue 25.9: D1's 10 GB per database is never reached by ingest. Writes record the
// size D1 reports; ingest answers 507 once a shard's database is at its stop size,
// before anything is queued, while reads go on. Here the stop size is 1 byte
// (`D1_INGEST_STOP_BYTES`), so the first write passes it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, call as callAt, until, d1 } from './harness.mjs';

let worker, url, keys;
const call = (...args) => callAt(url, ...args);
const activity = (id) => ({ id, userId: 'user-123', operation: 'crm.leads.read' });

before(async () => {
  worker = await startWorker({ D1_INGEST_STOP_BYTES: '1' });
  ({ url, keys } = worker);
});

after(() => worker?.stop());

test('ingest stops at the database size limit with a 507, nothing queued, reads go on', async () => {
  const a = keys['edge-a'];
  assert.equal((await call('POST', '/v1/activities', a.ingest, activity('cap-1')))[0], 202);
  await until('the first write', async () => (await call('GET', '/v1/activities/cap-1', a.read))[0] === 200);
  const [{ size }] = await until('the size recorded', async () => {
    const rows = d1(worker, a.shard, 'SELECT size_bytes AS size FROM database_size');
    return rows.length ? rows : null;
  });
  assert.ok(size > 1000, `a database of ${size} bytes`);
  // Ingest reads the recorded size at most every 10 s: within that, it still admits.
  let n = 0;
  const [status, refused] = await until('ingest to refuse', async () => {
    n += 1;
    const answer = await call('POST', '/v1/activities', a.ingest, activity(`cap-more-${n}`));
    return answer[0] === 507 ? answer : null;
  }, 30_000);
  assert.equal(status, 507);
  assert.equal(refused.error.code, 'insufficient_storage');
  assert.equal(refused.error.details.stopBytes, 1);
  assert.ok(refused.error.details.sizeBytes >= size, JSON.stringify(refused));
  const [s2, e2] = await call('POST', '/v1/activities?sync=true', a.ingest, activity('cap-sync'));
  assert.deepEqual([s2, e2.error.code], [507, 'insufficient_storage']);
  const [s3, e3] = await call('POST', '/v1/operations/crm.leads.read', a.ingest, { userId: 'user-123' });
  assert.deepEqual([s3, e3.error.code], [507, 'insufficient_storage']);
  // Nothing refused was queued: after the batch window, none of it is stored.
  await new Promise((r) => setTimeout(r, 6000));
  assert.equal((await call('GET', `/v1/activities/cap-more-${n}`, a.read))[0], 404);
  assert.equal((await call('GET', '/v1/activities/cap-sync', a.read))[0], 404);
  const [rs, report] = await call('GET', '/v1/reports?since=1d', a.read);
  assert.equal(rs, 200);
  assert.ok(report.totalActivities >= 1);
  // The other shard's database is measured on its own.
  assert.equal((await call('POST', '/v1/activities', keys['edge-b'].ingest, activity('cap-b')))[0], 202);
});
