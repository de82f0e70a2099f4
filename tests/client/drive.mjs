// Drives crm-host through a client generated from its own OpenAPI document: the types
// in generated/api.d.ts come from openapi-typescript, the calls from openapi-fetch.
// `tsc` checks this file against the generated types (client.test.mjs), so a path,
// method, parameter or body the document does not describe fails to compile.
import createClient from 'openapi-fetch';

/** @typedef {import('./generated/api.js').paths} Paths */
/** @typedef {import('./generated/api.js').components['schemas']} Schemas */

/**
 * A typed client for `baseUrl`, authenticated with `key`.
 * @param {string} baseUrl
 * @param {string} key
 */
export function client(baseUrl, key) {
  return createClient(/** @type {import('openapi-fetch').ClientOptions} */ ({
    baseUrl,
    headers: { Authorization: `Bearer ${key}` },
  }));
}

/**
 * Ingest, a permission check, a report, an export, a checkpoint verified and a
 * refusal, through the client.
 * @param {import('openapi-fetch').Client<Paths>} api
 */
export async function drive(api) {
  const id = `generated-client-${Date.now()}`;
  const ingest = await api.POST('/v1/activities', {
    params: { query: {} },
    body: [{ id, userId: 'user-004', operation: 'crm.leads.read', entityType: 'lead', entityId: 'lead-1' }],
  });
  const check = await api.POST('/v1/permissions/check', {
    body: { userId: 'user-004', permission: 'crm.leads.delete' },
  });
  const report = await api.GET('/v1/reports', { params: { query: { since: '7d', groupBy: 'day' } } });
  const exported = await api.GET('/v1/export', {
    params: { query: { since: '1h', format: 'ndjson' } },
    parseAs: 'text',
  });
  const checkpoint = await api.GET('/v1/audit/checkpoint');
  const kept = checkpoint.data;
  const verified = await api.GET('/v1/audit/verify', {
    params: { query: { checkpointSeq: String(kept?.seq), checkpointHash: kept?.hash } },
  });
  const refused = await api.POST('/v1/activities', {
    params: { query: {} },
    body: { userId: 'user-004', operation: 'Not An Operation' },
  });
  /** @type {Schemas['Error'] | undefined} */
  const refusal = refused.error;
  return {
    id,
    ingest: { status: ingest.response.status, data: ingest.data },
    check: { status: check.response.status, data: check.data },
    report: { status: report.response.status, data: report.data },
    exported: { status: exported.response.status, text: exported.data ?? '' },
    verified: { status: verified.response.status, data: verified.data },
    refused: { status: refused.response.status, code: refusal?.error.code },
  };
}
