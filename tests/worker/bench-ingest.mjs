// Local ingest → Queue → consumer → D1 throughput of crm-worker under `wrangler dev`.
// `node bench-ingest.mjs [batches] [batch size]` (after worker-build); not part of the tests.
import { startWorker, call, until } from './harness.mjs';

const batches = Number(process.argv[2] ?? 20);
const size = Number(process.argv[3] ?? 100);
const worker = await startWorker();
try {
  const key = worker.keys['edge-a'];
  const start = performance.now();
  for (let b = 0; b < batches; b += 1) {
    const batch = Array.from({ length: size }, (_, i) => ({ id: `b${b}-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
    const [status] = await call(worker.url, 'POST', '/v1/activities', key.ingest, batch);
    if (status !== 202) throw new Error(`ingest answered ${status}`);
  }
  const accepted = performance.now();
  const total = batches * size;
  await until('the consumer to drain', async () => {
    const [, r] = await call(worker.url, 'GET', '/v1/reports/users/user-123?since=1d', key.read);
    return r.totalActivities === total;
  }, 300_000);
  const done = performance.now();
  const rate = (n, ms) => Math.round(n / (ms / 1000));
  console.log(`${total} activities in ${batches} batches of ${size}`);
  console.log(`accepted (202, queued): ${rate(total, accepted - start)}/s`);
  console.log(`written to D1 by the consumer: ${rate(total, done - start)}/s end to end (${Math.round(done - start)} ms)`);
} finally {
  worker.stop();
}
