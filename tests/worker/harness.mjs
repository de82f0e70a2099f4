// Starts crm-worker under `wrangler dev` (workerd) on 127.0.0.1 with local D1 and
// Queues in a temporary folder, with two shards (two D1 databases, two queues, as in
// wrangler.toml) and tenants from the conformance fixture: by default `edge-a` on
// shard 0 and `edge-b` on shard 1.
// Used by the e2e suite and the ingest benchmark. The worker must be built already.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, setGlobalDispatcher } from 'undici';

// One connection per request. The tests block the event loop while `wrangler d1
// execute` runs (`d1()` below), so fetch cannot notice a kept-alive connection that
// workerd closed meanwhile (after about 15 s idle) and reuses it: `fetch failed`,
// "other side closed". This was the worker tier's intermittent failure.
setGlobalDispatcher(new Agent({ pipelining: 0 }));

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'tests/worker/node_modules/.bin');
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_UPDATE_NOTIFIER: '1' };

function wrangler(args) {
  return execFileSync(join(bin, 'wrangler'), args, { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

const sql = (v) => `'${String(v).replaceAll("'", "''")}'`;

/** The D1 binding of shard `n` (as the worker's `shards.rs`). */
export const shardDb = (n) => (n === 0 ? 'DB' : `DB_${n}`);

/** Runs SQL on a shard's local database (also while the worker runs). */
export function d1(worker, shard, command) {
  const out = wrangler(['d1', 'execute', shardDb(shard), '--local', '--persist-to', worker.persist, '--config', worker.config, '--json', '--command', command]);
  return JSON.parse(out)[0].results;
}

// A tenant's rows go to its shard; its placement and its keys' hashes to the control
// database (shard 0), where the worker resolves them first.
function seedTenant(keys, sqlByShard, id, shard, fixture, balanceUnits) {
  const control = (sqlByShard[0] ??= []);
  if (shard !== 0) control.push(`INSERT INTO tenant_shards (tenant_id, shard) VALUES (${sql(id)}, ${shard});`);
  const stmts = (sqlByShard[shard] ??= []);
  stmts.push(`INSERT INTO tenants (id, name, version, policy, directory, balance_units, head_seq, head_hash, created_at)
    VALUES (${sql(id)}, ${sql(id)}, 1, ${sql(JSON.stringify(fixture.policy))}, ${sql(JSON.stringify(fixture.directory))},
    ${balanceUnits}, 0, ${sql('0'.repeat(64))}, 0);`);
  // The opening balance as the engine itself records one: a grant in effect and its
  // ledger entry (the audit recounts the balance against both).
  if (Number(balanceUnits) > 0) {
    stmts.push(`INSERT INTO credit_grants (tenant_id, id, amount_units, remaining_units, effective_at, expires_at, priority, created_at, status, closed_at, reason, external_id)
      VALUES (${sql(id)}, 'opening-balance', ${balanceUnits}, ${balanceUnits}, 0, NULL, 50, 0, 'active', NULL, 'opening balance', NULL);`);
    stmts.push(`INSERT INTO credit_ledger (tenant_id, entry, at, delta_units, balance_units, kind, detail)
      VALUES (${sql(id)}, 1, 0, ${balanceUnits}, ${balanceUnits}, 'grant', 'grant opening-balance');`);
  }
  keys[id] = { shard };
  for (const scope of ['admin', 'ingest', 'read']) {
    const key = `crm_${randomBytes(24).toString('hex')}`;
    keys[id][scope] = key;
    const hash = createHash('sha256').update(key).digest('hex');
    stmts.push(`INSERT INTO api_keys (id, tenant_id, key_hash, scopes, created_at) VALUES (${sql(`key_${id}_${scope}`)}, ${sql(id)}, ${sql(hash)}, ${sql(scope)}, 0);`);
    control.push(`INSERT INTO key_directory (key_hash, tenant_id) VALUES (${sql(hash)}, ${sql(id)});`);
  }
}

/** The D1 bindings of wrangler.toml, shard 0 first. */
function shardDatabases(toml) {
  return [...toml.matchAll(/^binding = "(DB(?:_\d+)?)"$/gm)].map((m) => m[1]);
}

export async function call(url, method, path, key, body, extra = {}) {
  const headers = { Authorization: `Bearer ${key}`, ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)) });
  const text = await r.text();
  let json = null;
  if (r.status === 204 && text === '') return [r.status, null];
  try { json = JSON.parse(text); } catch { assert.fail(`non-JSON answer ${r.status}: ${text}`); }
  return [r.status, json];
}

export async function until(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// `stop()` kills wrangler's process group and removes the data (with CRM_WORKER_LOG=file
// set, wrangler's output is written there first, for debugging).
/** The checkpoint signing key of the local worker (a Worker secret in production). */
const TEST_CHECKPOINT_KEY = '5e'.repeat(32);

/** Starts the worker; `vars` are extra `--var NAME:value` settings, `tenants` maps
 * tenant ids to shards, `adjust` rewrites the copy of wrangler.toml (a test's own queue
 * settings). `GET /__scheduled` runs the cron trigger (`--test-scheduled`). */
export async function startWorker(vars = {}, tenants = { 'edge-a': 0, 'edge-b': 1 }, adjust = (toml) => toml) {
  const persist = mkdtempSync(join(tmpdir(), 'crm-worker-'));
  // A copy of wrangler.toml without [build] (the worker is built beforehand), with absolute paths.
  const config = join(persist, 'wrangler.toml');
  const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8').replace(/\[build\][^[]*/s, '')
    .replace('main = "crates/worker/build/index.js"', `main = "${join(root, 'crates/worker/build/index.js')}"`)
    .replaceAll('migrations_dir = "migrations"', `migrations_dir = "${join(root, 'migrations')}"`)
    .replace('directory = "www"', `directory = "${join(root, 'www')}"`);
  writeFileSync(config, adjust(toml));
  // Every shard gets every migration (as `cargo xtask d1-migrate` does remotely).
  for (const db of shardDatabases(toml)) {
    wrangler(['d1', 'migrations', 'apply', db, '--local', '--persist-to', persist, '--config', config]);
  }
  const fixture = JSON.parse(readFileSync(join(root, 'tests/conformance/fixtures/acme.json'), 'utf8'));
  const keys = {};
  const sqlByShard = {};
  for (const [id, shard] of Object.entries(tenants)) seedTenant(keys, sqlByShard, id, shard, fixture, 1_000_000_000);
  for (const [shard, stmts] of Object.entries(sqlByShard)) {
    // In slices: one `d1 execute` with thousands of statements is slow to parse.
    for (let i = 0; i < stmts.length; i += 500) {
      wrangler(['d1', 'execute', shardDb(Number(shard)), '--local', '--persist-to', persist, '--config', config, '--command', stmts.slice(i, i + 500).join('\n')]);
    }
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dev = spawn(join(bin, 'wrangler'), ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
    '--config', config, '--var', 'CONFORMANCE:on', '--var', `CHECKPOINT_KEY:${TEST_CHECKPOINT_KEY}`, ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
    '--show-interactive-dev-session=false', '--test-scheduled'],
  { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  dev.stdout.on('data', (d) => { log += d; });
  dev.stderr.on('data', (d) => { log += d; });
  const stop = () => {
    if (process.env.CRM_WORKER_LOG) writeFileSync(process.env.CRM_WORKER_LOG, log);
    try { process.kill(-dev.pid, 'SIGTERM'); } catch { /* already gone */ }
    rmSync(persist, { recursive: true, force: true });
  };
  try {
    await until(`wrangler dev on ${url}`, async () => (await fetch(`${url}/healthz`).then((r) => r.ok).catch(() => false)), 90_000);
  } catch (e) {
    stop();
    throw new Error(`${e.message}\n${log}`);
  }
  return { url, keys, stop, persist, config };
}
