// A client generated from crm-host's OpenAPI document by a common generator
// (openapi-typescript, with openapi-fetch as its runtime) covers every operation, type-
// checks the calls in drive.mjs, and drives ingest, a check, a report, an export and a
// refusal against a real `crm-host demo`. CRM_HOST_BIN names the built binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { client, drive } from './drive.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.CRM_HOST_BIN ?? join(here, '../../target/debug/crm-host');
const generated = join(here, 'generated');

let demo, dataDir, url, key, doc;

function startDemo() {
  dataDir = mkdtempSync(join(tmpdir(), 'crm-client-'));
  demo = spawn(bin, ['demo', '--listen', '127.0.0.1:0', '--activities', '300', '--dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${out}`)), 120_000);
    demo.on('exit', (code) => reject(new Error(`demo exited with ${code}:\n${out}`)));
    demo.stdout.on('data', (chunk) => {
      out += chunk;
      const u = out.match(/running at (http:\/\/127\.0\.0\.1:\d+)/);
      const k = out.match(/API key \(admin[^)]*\): (crm_[0-9a-f]+)/);
      if (u && k) {
        clearTimeout(timer);
        resolve([u[1], k[1]]);
      }
    });
  });
}

before(async () => {
  [url, key] = await startDemo();
  doc = await (await fetch(`${url}/v1/openapi.json`)).json();
  mkdirSync(generated, { recursive: true });
  const spec = join(generated, 'openapi.json');
  writeFileSync(spec, JSON.stringify(doc));
  execFileSync(join(here, 'node_modules/.bin/openapi-typescript'), [spec, '-o', join(generated, 'api.d.ts')], {
    stdio: 'inherit',
  });
});

after(async () => {
  if (demo && demo.exitCode === null) {
    demo.removeAllListeners('exit');
    const exited = new Promise((resolve) => demo.once('exit', resolve));
    process.kill(demo.pid, 'SIGTERM');
    await exited;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('the generated client has every operation of the document, by its operationId', () => {
  const types = readFileSync(join(generated, 'api.d.ts'), 'utf8');
  const operations = types.slice(types.indexOf('export interface operations'));
  const ids = Object.values(doc.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  assert.ok(ids.length >= 38, `${ids.length} operations`);
  for (const id of ids) {
    assert.match(id, /^[a-z][A-Za-z0-9]*$/, `${id} is a method name`);
    assert.ok(operations.includes(`\n    ${id}: {`), `the generated client lacks ${id}`);
  }
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
});

test('the calls type-check against the generated types', () => {
  // tsc exits non-zero (and prints why) when drive.mjs uses a path, method, parameter
  // or body the document does not describe.
  execFileSync(join(here, 'node_modules/.bin/tsc'), ['-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
});

test('the generated client ingests, checks, reports, exports and is refused', async () => {
  const r = await drive(client(url, key));
  assert.equal(r.ingest.status, 201, JSON.stringify(r.ingest));
  assert.equal(r.ingest.data.results[0].id, r.id);
  assert.equal(r.check.status, 200);
  assert.equal(r.check.data.userId, 'user-004');
  assert.equal(typeof r.check.data.allowed, 'boolean');
  assert.equal(r.report.status, 200);
  assert.ok(r.report.data.totalActivities > 0, JSON.stringify(r.report.data).slice(0, 200));
  assert.equal(r.exported.status, 200);
  assert.ok(r.exported.text.includes(r.id), 'the export holds the new activity');
  assert.equal(r.verified.status, 200);
  assert.equal(r.verified.data.ok, true, JSON.stringify(r.verified.data));
  assert.equal(r.verified.data.checkpoint, 'matched');
  assert.equal(r.refused.status, 400);
  assert.equal(r.refused.code, 'invalid_input');
});
