// The queues' worst cases at the edge, made to happen. Issue 25.1: nothing
// acknowledged is lost when D1 fails for longer than the queue's retry budget. A table
// only the consumer's writes touch is made to fail for real (`report_rollups`, renamed
// under the running worker; ingest still reads and reserves, so it acknowledges);
// every write of the consumer then fails, its messages come back with growing delays
// until their retries are spent (2 here instead of 30), Queues moves them to the
// dead-letter queue, whose consumer parks them in D1; once D1 is back, a re-drive
// writes every acknowledged activity, in one chain. Issue 25.10: deliveries twice,
// reversed and late (the `/v1/testing/deliveries` hook).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, call as callAt, until, d1 } from './harness.mjs';

let worker, url, keys;
const call = (...args) => callAt(url, ...args);

before(async () => {
  worker = await startWorker({}, { 'edge-a': 0, 'edge-b': 1 },
    (toml) => toml.replace(/max_retries = 30/g, 'max_retries = 2'));
  ({ url, keys } = worker);
});

after(() => worker?.stop());

test('an outage past the retry budget parks acknowledged activities; a re-drive writes them', async () => {
  const a = keys['edge-a'];
  const broken = (sql) => d1(worker, a.shard, sql);
  broken('ALTER TABLE report_rollups RENAME TO report_rollups_away');
  const sent = [];
  for (let r = 0; r < 3; r += 1) {
    const batch = Array.from({ length: 5 }, (_, i) => ({ id: `out-${r}-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
    const [status, body] = await call('POST', '/v1/activities', a.ingest, batch);
    assert.equal(status, 202, JSON.stringify(body));
    sent.push(...body.ids);
  }
  // Each message fails, comes back after 10 s and 20 s, then goes to the dead-letter
  // queue, whose consumer keeps it in D1 (`dead_letters` is not the failing table).
  // Meanwhile nothing was written.
  assert.equal((await call('GET', `/v1/activities/${sent[0]}`, a.read))[0], 404);
  const letters = await until('every packet parked as a dead letter', async () => {
    const [s, list] = await call('GET', '/v1/dead-letters', a.admin);
    assert.equal(s, 200, JSON.stringify(list));
    const ids = list.deadLetters.flatMap((l) => l.body.items.map((x) => x.activity.id));
    return list.deadLetters.length >= 1 && sent.every((id) => ids.includes(id)) ? list.deadLetters : null;
  }, 180_000);
  assert.ok(letters.every((l) => l.reason.includes('retries ran out')), JSON.stringify(letters.map((l) => l.reason)));
  broken('ALTER TABLE report_rollups_away RENAME TO report_rollups');
  for (const letter of letters) {
    const [s, r] = await call('POST', `/v1/dead-letters/${letter.id}/redrive`, a.admin);
    assert.equal(s, 202, JSON.stringify(r));
  }
  await until('every acknowledged activity written', async () => {
    const found = await Promise.all(sent.map(async (id) => (await call('GET', `/v1/activities/${id}`, a.read))[0]));
    return found.every((s) => s === 200);
  }, 60_000);
  const [, verified] = await call('GET', '/v1/audit/verify', a.read);
  assert.equal(verified.ok, true, JSON.stringify(verified));
  assert.equal(verified.verified, sent.length);
  assert.deepEqual((await call('GET', '/v1/dead-letters', a.admin))[1].deadLetters, []);
});

// Issue 25.10: Queues delivers at least once and in any order. The same packet twice,
// packets in reverse order and late copies (test hook) are written once each, in one
// unbroken chain, charged once.
test('packets delivered twice, reversed and late are written once each, in one chain', async () => {
  const b = keys['edge-b'];
  const packet = (p, n) => Array.from({ length: n }, (_, i) => ({ id: `dup-${p}-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
  const [s, sent] = await call('POST', '/v1/testing/deliveries', b.admin, {
    packets: [packet(0, 3), packet(1, 2), packet(2, 4)],
    sends: [{ packet: 2 }, { packet: 1 }, { packet: 0 }, { packet: 2 }, { packet: 0, delaySeconds: 8 }, { packet: 1, delaySeconds: 8 }],
  });
  assert.equal(s, 202, JSON.stringify(sent));
  const listed = async () => (await call('GET', '/v1/activities?limit=500', b.read))[1].activities;
  await until('all nine written', async () => (await listed()).length === 9, 60_000);
  // The late copies arrive after 8 s and the batch window: replays, nothing more.
  await new Promise((r) => setTimeout(r, 16_000));
  const rows = await listed();
  assert.equal(new Set(rows.map((r) => r.id)).size, 9);
  assert.deepEqual(rows.map((r) => r.seq).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const [, verified] = await call('GET', '/v1/audit/verify', b.read);
  assert.deepEqual([verified.ok, verified.verified], [true, 9], JSON.stringify(verified));
  const [, balance] = await call('GET', '/v1/credits/balance', b.read);
  assert.equal(balance.balance, '99995.5000', 'nine reads at 0.5, each charged once');
});
