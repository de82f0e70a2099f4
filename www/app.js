// Dashboard glue: fetches the API, hands report JSON to crm-web (Rust → SVG), fills the
// table. No chart logic here.
import init, { renderBurnDown, renderChart, verifyExport } from '/pkg/crm_web.js';

const $ = (sel) => document.querySelector(sel);
const state = { key: sessionStorage.getItem('crm-key'), session: null, cursor: null, seq: 0 };

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function request(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body?.error?.code ?? 'http', body?.error?.message ?? `HTTP ${response.status}`);
  }
  return response;
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.code ?? 'http', body?.error?.message ?? `HTTP ${response.status}`);
  }
  return body;
}

function showError(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = !message;
}

function explain(err) {
  if (err.status === 401) return 'This sign-in was not accepted: the key or token is unknown, expired or revoked. Ask for a new one.';
  if (err.status === 403) return 'This sign-in may not read that (a key needs the read scope; a viewer token covers only its user or department).';
  return err.message;
}

function setBusy(busy, text = '') {
  $('#dashboard').setAttribute('aria-busy', String(busy));
  $('#status').textContent = busy ? 'Loading…' : text;
}

async function signIn(key) {
  state.key = key;
  showError('');
  try {
    state.session = await api('/v1/session');
    sessionStorage.setItem('crm-key', key);
  } catch (err) {
    state.key = null;
    sessionStorage.removeItem('crm-key');
    document.body.dataset.state = 'signed-out';
    showError(explain(err));
    return;
  }
  $('#sign-in').hidden = true;
  $('#dashboard').hidden = false;
  $('#sign-out').hidden = false;
  $('.balance').hidden = !state.session.tenantWide;
  $('#verify-server').hidden = !state.session.tenantWide;
  if (!state.session.departments.length) $('#scope-kind').value = 'users';
  fillScopes();
  await Promise.all([refresh(), balance(), credits()]);
}

function signOut() {
  sessionStorage.removeItem('crm-key');
  location.reload();
}

function fillScopes() {
  const kind = $('#scope-kind').value;
  const select = $('#scope-id');
  select.replaceChildren();
  const items = kind === 'users'
    ? state.session.users.map((u) => [u.id, `${u.name} (${u.id})`])
    : state.session.departments.map((d) => [d.id, d.name]);
  for (const [id, label] of items) select.append(new Option(label, id));
}

async function balance() {
  if (!state.session.tenantWide) return;
  try {
    const b = await api('/v1/credits/balance');
    $('#balance').textContent = b.balance;
  } catch (err) {
    $('#balance').textContent = '–';
  }
}

const when = (t) => (t ? new Date(t).toLocaleString() : '–');

// The tenant's grants with their remainders, the balance after each of the latest
// ledger entries, and the alerts raised (tenant-wide sign-ins only).
async function credits() {
  if (!state.session.tenantWide) return;
  try {
    const [grants, ledger, alerts] = await Promise.all([
      api('/v1/credits/grants?limit=50'),
      api('/v1/credits/ledger?limit=200'),
      api('/v1/credits/alerts?limit=20'),
    ]);
    $('#burn-down').innerHTML = renderBurnDown(JSON.stringify(ledger));
    const body = $('#grants tbody');
    body.replaceChildren();
    for (const g of grants.grants) {
      const tr = document.createElement('tr');
      tr.append(cell(g.id), cell(g.amount), cell(g.remaining), cell(String(g.priority)),
        cell(when(g.effectiveAt)), cell(when(g.expiresAt)), cell(g.status, `grant-${g.status}`), cell(g.reason));
      body.append(tr);
    }
    const list = $('#alerts');
    list.replaceChildren();
    for (const a of alerts.alerts) {
      const li = document.createElement('li');
      li.className = `alert-${a.state}`;
      li.textContent = `${when(a.at)} · ${a.ruleId} ${a.state}${a.grantId ? ` (grant ${a.grantId})` : ''} · balance ${a.balance}`;
      list.append(li);
    }
    if (!alerts.alerts.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No alerts raised.' }));
    $('#credits-panel').hidden = false;
  } catch (err) {
    showError(explain(err));
  }
}

function query(extra = {}) {
  const params = new URLSearchParams({ since: $('#period').value, groupBy: $('#group-by').value, ...extra });
  if ($('#tz').value) params.set('tz', $('#tz').value);
  return params;
}

async function refresh() {
  const kind = $('#scope-kind').value;
  const id = $('#scope-id').value;
  if (!id) { showError('The directory has no entries to show yet.'); return; }
  const seq = ++state.seq;
  document.body.dataset.state = 'loading';
  setBusy(true);
  showError('');
  try {
    const report = await api(`/v1/reports/${kind}/${encodeURIComponent(id)}?${query()}`);
    if (seq !== state.seq) return; // a newer selection is on its way
    render(report);
    state.cursor = null;
    $('#activities tbody').replaceChildren();
    await loadActivities(kind, id, seq);
    if (seq !== state.seq) return;
    setBusy(false, `${report.totalActivities} activities, ${report.timezone}, by ${report.groupBy}`);
    document.body.dataset.state = 'ready';
  } catch (err) {
    if (seq !== state.seq) return;
    setBusy(false);
    showError(explain(err));
    document.body.dataset.state = 'error';
  }
}

function render(report) {
  const json = JSON.stringify(report);
  for (const el of document.querySelectorAll('[data-chart]')) {
    el.innerHTML = renderChart(json, el.dataset.chart);
  }
  $('#total').textContent = report.totalActivities;
  $('#credits').textContent = report.totalCreditsUsed;
  $('#most-active').textContent = report.mostActiveUser ? `${report.mostActiveUser.userId} (${report.mostActiveUser.count})` : '–';
  $('#ips').textContent = report.complianceSummary.uniqueIpAddresses;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadActivities(kind, id, seq) {
  const params = new URLSearchParams({ since: $('#period').value, limit: '20' });
  if (state.cursor) params.set('cursor', state.cursor);
  const page = await api(`/v1/${kind}/${encodeURIComponent(id)}/activities?${params}`);
  if (seq !== state.seq) return;
  const body = $('#activities tbody');
  for (const a of page.activities) {
    const tr = document.createElement('tr');
    const op = a.permission.operationContext;
    tr.append(
      cell(new Date(a.occurredAt).toLocaleString()),
      cell(a.userContext.user.name),
      cell(a.operation),
      cell(a.outcome, `outcome-${a.outcome}`),
      cell(a.credits),
      cell(`${op.has ? 'allowed' : 'refused'} · ${op.source} · ${op.reason}`),
      cell(a.userContext.entityPath, 'path'),
    );
    body.append(tr);
  }
  state.cursor = page.nextCursor;
  $('#more').hidden = !page.nextCursor;
}

function exportParams(format) {
  const kind = $('#scope-kind').value;
  const params = new URLSearchParams({ format, since: $('#period').value });
  params.set(kind === 'users' ? 'userId' : 'departmentId', $('#scope-id').value);
  return params;
}

async function download(format) {
  const status = $('#audit-status');
  status.textContent = 'Preparing the export…';
  try {
    const response = await request(`/v1/export?${exportParams(format)}`);
    const blob = await response.blob();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `activities-${$('#scope-id').value}.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
    status.textContent = `Exported ${format.toUpperCase()} (${blob.size} bytes).`;
  } catch (err) {
    status.textContent = explain(err);
  }
}

async function verifyServer() {
  const status = $('#audit-status');
  status.textContent = 'Verifying the hash chain…';
  try {
    const v = await api('/v1/audit/verify');
    status.dataset.result = v.ok ? 'ok' : 'broken';
    status.textContent = v.ok
      ? `The chain verifies: ${v.verified} records, sequence ${v.anchorSeq + 1} to ${v.headSeq}.`
      : `The chain is broken at sequence ${v.firstBadSeq}: ${v.reason}`;
  } catch (err) {
    status.textContent = explain(err);
  }
}

async function verifyFile(file) {
  const status = $('#audit-status');
  const v = JSON.parse(verifyExport(await file.text()));
  status.dataset.result = v.ok ? 'ok' : 'broken';
  status.textContent = v.ok
    ? `${file.name}: ${v.records} records, every hash matches; ${v.links} links checked${v.contiguous ? '' : ' (a filtered export: gaps between records are expected)'}.`
    : `${file.name}: tampered at sequence ${v.firstBadSeq ?? '?'}: ${v.reason}`;
}

async function main() {
  await init({ module_or_path: '/pkg/crm_web_bg.wasm' });
  $('#sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('#key').value.trim());
  });
  $('#sign-out').addEventListener('click', signOut);
  $('#scope-kind').addEventListener('change', () => { fillScopes(); refresh(); });
  for (const sel of ['#scope-id', '#period', '#group-by', '#tz']) $(sel).addEventListener('change', refresh);
  $('#more').addEventListener('click', async () => {
    try { await loadActivities($('#scope-kind').value, $('#scope-id').value, state.seq); } catch (err) { showError(explain(err)); }
  });
  $('#export-ndjson').addEventListener('click', () => download('ndjson'));
  $('#export-csv').addEventListener('click', () => download('csv'));
  $('#verify-server').addEventListener('click', verifyServer);
  $('#verify-file').addEventListener('change', (e) => { if (e.target.files[0]) verifyFile(e.target.files[0]); });
  // A dashboard link carries a viewer token in the fragment (never sent to the server
  // in URLs or logs); take it and clear it from the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromLink) {
    history.replaceState(null, '', location.pathname);
    state.key = fromLink;
  }
  if (state.key) await signIn(state.key);
}

main().catch((err) => showError(`The dashboard failed to start: ${err.message}`));
