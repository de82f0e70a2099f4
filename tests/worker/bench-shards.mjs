// Many tenants on one shard vs spread over two, in one run: local ingest → Queue →
// consumer → D1 throughput of crm-worker under `wrangler dev`.
// `node bench-shards.mjs [tenants] [batches per tenant] [batch size] [concurrency]`
// (after worker-build); not part of the tests. Prints both rates and their ratio.
import { startWorker, call, until } from './harness.mjs';

const tenants = Number(process.argv[2] ?? 8);
const batches = Number(process.argv[3] ?? 10);
const size = Number(process.argv[4] ?? 100);
const concurrency = Number(process.argv[5] ?? 8);

async function run(shards) {
  const ids = Array.from({ length: tenants }, (_, i) => `bench-${i}`);
  const worker = await startWorker({}, Object.fromEntries(ids.map((id, i) => [id, i % shards])));
  try {
    const jobs = [];
    for (let b = 0; b < batches; b += 1) {
      for (const id of ids) jobs.push([id, b]);
    }
    const start = performance.now();
    const post = async () => {
      for (let job = jobs.shift(); job; job = jobs.shift()) {
        const [id, b] = job;
        const batch = Array.from({ length: size }, (_, i) => ({ id: `b${b}-${i}`, userId: 'user-123', operation: 'crm.leads.read' }));
        const [status] = await call(worker.url, 'POST', '/v1/activities', worker.keys[id].ingest, batch);
        if (status !== 202) throw new Error(`ingest answered ${status}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, post));
    const accepted = performance.now();
    const each = batches * size;
    await until('every shard to drain', async () => {
      const heads = await Promise.all(ids.map(async (id) => (await call(worker.url, 'GET', '/v1/metrics', worker.keys[id].admin))[1].headSeq));
      return heads.every((h) => h === each);
    }, 900_000);
    const done = performance.now();
    return { total: each * tenants, acceptedMs: accepted - start, doneMs: done - start };
  } finally {
    worker.stop();
  }
}

const rate = (n, ms) => Math.round(n / (ms / 1000));
const one = await run(1);
const two = await run(2);
console.log(`${tenants} tenants × ${batches} batches × ${size} activities, ${concurrency} concurrent clients`);
for (const [name, r] of [['1 shard', one], ['2 shards', two]]) {
  console.log(`${name}: accepted ${rate(r.total, r.acceptedMs)}/s, written end to end ${rate(r.total, r.doneMs)}/s (${Math.round(r.doneMs)} ms)`);
}
console.log(`ratio 2 shards / 1 shard (end to end): ${(one.doneMs / two.doneMs).toFixed(2)}×`);
